/**
 * Warm-up schedules: how many messages a new sending domain or address may
 * send to each destination on each day of its warm-up ([warmup."SENDER"] in
 * posta.toml), as SES's dedicated-IP warm-up raises its volume day by day.
 *
 * - Days are UTC days. Day 1 is the `start` date; before it day 1's limit
 *   applies (a sender is no better known before its warm-up starts); after
 *   the schedule's last day there is no limit (the warm-up is done).
 * - A destination is the mailbox provider a receiver's reputation belongs to:
 *   google, microsoft, yahoo or apple for their own domains (gmail.com,
 *   outlook.com, ...: metrics/domain-class.ts), else the recipient domain
 *   itself. Mailbox providers judge a new sender per provider, over all of
 *   their domains, so gmail.com and googlemail.com share one count; a
 *   company domain hosted at Google is counted under its own name (posta
 *   classes by name, not by MX).
 * - Which warm-up a message counts in: the one of its envelope sender's
 *   address when there is one, else of its domain; an address's warm-up is its
 *   own (its mail does not count in its domain's too).
 *
 * Pure: the clock comes in as `now`.
 */
import type { WarmupConfig } from '../config/load.ts';
import { domainClass } from '../metrics/domain-class.ts';

export const DAY_MS = 86_400_000;

/** The UTC day number of a time (days since 1970-01-01). */
export function epochDay(t: number): number {
  return Math.floor(t / DAY_MS);
}

/** Where a warm-up is on one day. */
export interface WarmupDay {
  /** pending: before its start; active: within its schedule; done: past it. */
  state: 'pending' | 'active' | 'done';
  /** The day of the warm-up, 1 on `start` (before it: 0 or less). */
  day: number;
  /** Days in the schedule. */
  days: number;
  /** Messages a day per destination today; null: no limit (done). */
  limit: number | null;
}

export function warmupDay(w: WarmupConfig, now: number): WarmupDay {
  const day = epochDay(now) - epochDay(Date.parse(`${w.start}T00:00:00Z`)) + 1;
  const days = w.schedule.length;
  if (day > days) return { state: 'done', day, days, limit: null };
  const limit = w.schedule[Math.max(1, day) - 1] ?? null;
  return { state: day < 1 ? 'pending' : 'active', day, days, limit };
}

/** The destination a recipient domain counts under (see the top of this file). */
export function destinationOf(recipientDomain: string): string {
  const c = domainClass(recipientDomain);
  return c === 'other' ? recipientDomain : c;
}

/**
 * The warm-up of an envelope sender: its address's, else its domain's; none
 * for the null sender. `bySender` is keyed as WarmupConfig.sender.
 */
export function warmupOf(
  bySender: ReadonlyMap<string, WarmupConfig>,
  sender: string,
): WarmupConfig | undefined {
  if (sender === '') return undefined;
  const at = sender.lastIndexOf('@');
  const domain = sender.slice(at + 1).toLowerCase();
  return bySender.get(`${sender.slice(0, at).toLowerCase()}@${domain}`) ?? bySender.get(domain);
}

/** The time the UTC day after `now` begins: when a held recipient is tried again. */
export function nextDay(now: number): number {
  return (epochDay(now) + 1) * DAY_MS;
}

/** One warm-up as `posta status` and the dashboard show it. */
export interface WarmupStatus {
  sender: string;
  start: string;
  state: WarmupDay['state'];
  day: number;
  days: number;
  /** Today's messages per destination; null when done. */
  limit: number | null;
  /** Messages delivered today, by destination (only those with some). */
  today: Record<string, number>;
}

/** The one line `posta status` prints for a warm-up, and the dashboard too. */
export function warmupLine(w: WarmupStatus): string {
  const used = Object.entries(w.today)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([d, n]) => `${d} ${n}${w.limit !== null && n >= w.limit ? ' (full)' : ''}`)
    .join(', ');
  const sent = used ? `; sent today: ${used}` : '; nothing sent today';
  if (w.state === 'done') return `done (${w.days} days from ${w.start}), no limit${sent}`;
  if (w.state === 'pending') {
    return `starts ${w.start} (${w.days} days); until then day 1's ${w.limit ?? 0} a day per destination${sent}`;
  }
  return `day ${w.day} of ${w.days}: ${w.limit ?? 0} a day per destination${sent}`;
}
