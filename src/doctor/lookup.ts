/**
 * DNS questions the doctor asks, on the injected resolver: answers come back
 * as plain lists, where a name that does not exist (NXDOMAIN) or has no record
 * of the type (NODATA) is an empty list. Temporary failures (SERVFAIL,
 * timeouts) throw, and the check that asked reports "could not test".
 */
import { isIP } from 'node:net';
import { dnsFailure, type ResolveFn } from '../dns/resolver.ts';
import { ipv6Groups } from '../address/ip.ts';

async function orEmpty<T>(answer: Promise<unknown>): Promise<T[]> {
  try {
    return (await answer) as T[];
  } catch (err) {
    if (dnsFailure(err) !== 'temporary') return [];
    throw err;
  }
}

/** Each TXT record as one string: its character-strings joined (RFC 7208 §3.3, RFC 6376 §3.6.2.2). */
export async function txt(resolve: ResolveFn, name: string): Promise<string[]> {
  return (await orEmpty<string[]>(resolve(name, 'TXT'))).map((chunks) => chunks.join(''));
}

export async function ptr(resolve: ResolveFn, name: string): Promise<string[]> {
  return (await orEmpty<string>(resolve(name, 'PTR'))).map(hostName);
}

export function addresses(resolve: ResolveFn, name: string, family: 4 | 6): Promise<string[]> {
  return orEmpty<string>(resolve(name, family === 4 ? 'A' : 'AAAA'));
}

export async function mx(resolve: ResolveFn, name: string) {
  const list = await orEmpty<{ exchange: string; priority: number }>(resolve(name, 'MX'));
  return list
    .map((r) => ({ exchange: hostName(r.exchange), priority: r.priority }))
    .sort((a, b) => a.priority - b.priority);
}

/** Lower case, without the root dot: names compare equal as DNS compares them. */
export function hostName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** One text form per address, so that "::1" and "0:0::1" compare equal. */
export function ipKey(ip: string): string {
  return isIP(ip) === 6 ? ipv6Groups(ip.toLowerCase()).join(':') : ip;
}

/** Tag=value pairs of a DKIM, DMARC, MTA-STS or TLS-RPT record (RFC 6376 §3.2). */
export function tags(record: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of record.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim().toLowerCase();
    if (key && !out.has(key)) out.set(key, part.slice(eq + 1).trim());
  }
  return out;
}
