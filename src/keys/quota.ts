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
 * the sends taken and not yet committed (every path calls settled() once its
 * message is queued, giveBack() when it is not).
 */
import type { Db } from '../db/db.ts';
import type { ApiKey } from './keys.ts';
import { sentLast24Hours } from './usage.ts';

export type QuotaRefusal = { kind: 'rate' | 'daily'; message: string };

export class Quotas {
  private readonly db: Db;
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  /** Sends taken but maybe not committed yet, so that parallel ones cannot pass the day's limit together. */
  private readonly pending = new Map<string, number>();
  constructor(db: Db) {
    this.db = db;
  }

  /** Takes `recipients` from the key's quota, or says which limit refuses them. */
  take(key: ApiKey, recipients: number, now = Date.now()): QuotaRefusal | null {
    const inFlight = this.pending.get(key.id) ?? 0;
    if (sentLast24Hours(this.db, key.id, now) + inFlight + recipients > key.daily) {
      return { kind: 'daily', message: 'Daily message quota exceeded.' };
    }
    const b = this.buckets.get(key.id) ?? { tokens: key.rate, at: now };
    b.tokens = Math.min(key.rate, b.tokens + ((now - b.at) / 1000) * key.rate);
    b.at = now;
    this.buckets.set(key.id, b);
    if (b.tokens < 1) return { kind: 'rate', message: 'Maximum sending rate exceeded.' };
    b.tokens -= recipients;
    this.pending.set(key.id, inFlight + recipients);
    return null;
  }

  /** Gives back what take() took for a send that then failed (not queued). */
  giveBack(key: ApiKey, recipients: number): void {
    this.settled(key, recipients);
    const b = this.buckets.get(key.id);
    if (b) b.tokens = Math.min(key.rate, b.tokens + recipients);
  }

  /** The send is committed (the database counts it now) or given back: no longer in flight. */
  settled(key: ApiKey, recipients: number): void {
    const left = (this.pending.get(key.id) ?? 0) - recipients;
    if (left > 0) this.pending.set(key.id, left);
    else this.pending.delete(key.id);
  }
}
