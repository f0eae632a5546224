/**
 * The sending quota of access keys, as SES applies it: a maximum send rate
 * (recipients per second) and a maximum per 24 hours. Over either, the SES
 * APIs answer TooManyRequestsException / Throttling (which the SDKs retry)
 * and SMTP answers 451 4.7.1.
 *
 * The rate is a token bucket per key, in memory, holding one second's worth:
 * a send may start while the bucket holds a token and then takes one per
 * recipient, going into debt, so that a message to 50 recipients under a
 * rate of 14 passes once and the next waits for the debt to be paid. The
 * daily count is the database's (usage.ts), so it survives a restart, plus
 * the sends taken in the last two seconds, which may not be committed yet.
 */
import type { Db } from '../db/db.ts';
import type { ApiKey } from './keys.ts';
import { sentLast24Hours } from './usage.ts';

/**
 * How long a taken send counts in memory beside the database's count: its
 * commit (and sync) is done well within it; meanwhile it may be counted twice,
 * which can refuse a send at the very edge of the day's limit a moment early.
 */
const PENDING_MS = 2000;

export type QuotaRefusal = { kind: 'rate' | 'daily'; message: string };

export class Quotas {
  private readonly db: Db;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Sends taken but maybe not committed yet, so that parallel ones cannot pass the day's limit together. */
  private readonly pending = new Map<string, { n: number; at: number }[]>();
  constructor(db: Db) {
    this.db = db;
  }

  /** Takes `recipients` from the key's quota, or says which limit refuses them. */
  take(key: ApiKey, recipients: number, now = Date.now()): QuotaRefusal | null {
    const pending = (this.pending.get(key.id) ?? []).filter((p) => now - p.at < PENDING_MS);
    const inFlight = pending.reduce((n, p) => n + p.n, 0);
    if (sentLast24Hours(this.db, key.id, now) + inFlight + recipients > key.daily) {
      return { kind: 'daily', message: 'Daily message quota exceeded.' };
    }
    pending.push({ n: recipients, at: now });
    this.pending.set(key.id, pending);
    const b = this.buckets.get(key.id) ?? { tokens: key.rate, at: now };
    b.tokens = Math.min(key.rate, b.tokens + ((now - b.at) / 1000) * key.rate);
    b.at = now;
    this.buckets.set(key.id, b);
    if (b.tokens < 1) return { kind: 'rate', message: 'Maximum sending rate exceeded.' };
    b.tokens -= recipients;
    return null;
  }

  /** Gives back what take() took for a send that then failed (not queued). */
  giveBack(key: ApiKey, recipients: number): void {
    const pending = this.pending.get(key.id) ?? [];
    const i = pending.findIndex((p) => p.n === recipients);
    if (i >= 0) pending.splice(i, 1);
    const b = this.buckets.get(key.id);
    if (b) b.tokens = Math.min(key.rate, b.tokens + recipients);
  }
}
