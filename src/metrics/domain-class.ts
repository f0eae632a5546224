/**
 * Recipient domains by class (google, microsoft, yahoo, apple, other) for the
 * metrics, never by name: a label per domain would grow without bound.
 */
export type DomainClass = 'google' | 'microsoft' | 'yahoo' | 'apple' | 'other';

const CLASSES: [RegExp, DomainClass][] = [
  [/^(gmail\.com|googlemail\.com)$/, 'google'],
  [/^(outlook\.[a-z.]+|hotmail\.[a-z.]+|live\.[a-z.]+|msn\.com)$/, 'microsoft'],
  [/^(yahoo\.[a-z.]+|ymail\.com|aol\.com)$/, 'yahoo'],
  [/^(icloud\.com|me\.com|mac\.com)$/, 'apple'],
];

export function domainClass(domain: string): DomainClass {
  return CLASSES.find(([re]) => re.test(domain))?.[1] ?? 'other';
}
