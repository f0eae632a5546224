/**
 * Warm-up enforcement: per warm-up, destination and UTC day, how many
 * messages were delivered, and how many more may be tried now
 * (schedule.ts says what the limits are).
 *
 * - A recipient counts once the receiving server accepted it (250): one
 *   deferred (4xx) is tried again and counted then, one refused (5xx) is
 *   not mail the receiver took. The count is written in the transaction that
 *   records the delivery (warmup_counts, beside the attempts: Spool.record),
 *   so it survives a restart and never disagrees with the delivery log; at
 *   start this counter reads today's counts back.
 * - take() reserves room for the recipients a job is about to try, so jobs
 *   running at once never pass the limit together; settle() turns the
 *   reservation into what was delivered.
 * - Recipients over the limit are held in the queue until the next UTC day
 *   (Spool.holdForWarmup): no attempt, no DSN, no delay warning, no
 *   DeliveryDelay event (the sender asked for the wait), and the time held
 *   does not count against [delivery] lifetime, so warm-up never bounces mail.
 *   A restart looks at held recipients again (Spool.releaseWarmupHolds), so
 *   a changed schedule applies at once.
 * - Only our senders' mail (source "submission": SMTP AUTH, sendmail, the
 *   APIs) is held; DSNs and forwarded mail never are, and no warm-up costs
 *   nothing: the scheduler has no Warmup then.
 */
import { counterStatement, statement, type Statement } from '../store/statement.ts';
import type { WarmupConfig } from '../config/load.ts';
import { prepared, type Db } from '../db/db.ts';
import {
  destinationOf,
  epochDay,
  nextDay,
  warmupDay,
  warmupOf,
  type WarmupStatus,
} from './schedule.ts';

/** How a held recipient's last reply begins (Spool.releaseWarmupHolds finds them by it). */
export const WARMUP_HOLD = 'warm-up';

/** Room taken for one job to one destination; give it back with settle(). */
export interface Reservation {
  sender: string;
  destination: string;
  /** The UTC day it counts on. */
  day: number;
  /** Recipients that may be tried now (the first of those asked for). */
  allowed: number;
  /** For the rest: when to try again, and why, as the queue shows it. */
  until: number;
  reason: string;
}

/** A count to add in the transaction that records the deliveries (Spool.record). */
export interface WarmupCount {
  sender: string;
  destination: string;
  day: number;
  n: number;
}

export class Warmup {
  private readonly db: Db;
  private readonly bySender: ReadonlyMap<string, WarmupConfig>;
  private day = -1;
  /** `sender \0 destination` → delivered today, and reserved by jobs in flight. */
  private readonly sent = new Map<string, number>();
  private readonly reserved = new Map<string, number>();

  constructor(db: Db, configs: readonly WarmupConfig[]) {
    this.db = db;
    this.bySender = new Map(configs.map((w) => [w.sender, w]));
  }

  /**
   * Room for `wanted` recipients of `sender`'s message at `recipientDomain`;
   * null when no warm-up limits it (none for the sender, or it is done).
   */
  take(sender: string, recipientDomain: string, wanted: number, now: number): Reservation | null {
    const w = warmupOf(this.bySender, sender);
    if (!w) return null;
    const d = warmupDay(w, now);
    if (d.limit === null) return null;
    this.roll(epochDay(now));
    const destination = destinationOf(recipientDomain);
    const k = key(w.sender, destination);
    const used = (this.sent.get(k) ?? 0) + (this.reserved.get(k) ?? 0);
    const allowed = Math.max(0, Math.min(wanted, d.limit - used));
    this.reserved.set(k, (this.reserved.get(k) ?? 0) + allowed);
    const until = nextDay(now);
    const day = d.state === 'pending' ? `before its start (${w.start}), day 1` : `day ${d.day}`;
    return {
      sender: w.sender,
      destination,
      day: this.day,
      allowed,
      until,
      reason: `${WARMUP_HOLD} of ${w.sender}: ${day} allows ${d.limit} messages to ${destination}, all taken; waiting until ${new Date(until).toISOString()}`,
    };
  }

  /** A job's end: `delivered` of its reservation were accepted by the receiver. */
  settle(r: Reservation, delivered: number): void {
    if (r.day !== this.day) return; // yesterday's: those counts are gone from memory
    const k = key(r.sender, r.destination);
    const left = (this.reserved.get(k) ?? 0) - r.allowed;
    if (left > 0) this.reserved.set(k, left);
    else this.reserved.delete(k);
    if (delivered > 0) this.sent.set(k, (this.sent.get(k) ?? 0) + delivered);
  }

  /** Every warm-up with today's counts, for `posta status`. */
  status(now: number): WarmupStatus[] {
    this.roll(epochDay(now));
    return [...this.bySender.values()].map((w) => {
      const d = warmupDay(w, now);
      const prefix = key(w.sender, '');
      const today = Object.fromEntries(
        [...this.sent]
          .filter(([k]) => k.startsWith(prefix))
          .map(([k, n]) => [k.slice(prefix.length), n]),
      );
      return { sender: w.sender, start: w.start, ...d, today };
    });
  }

  /** A new day: today's counts from the database (none yet, unless after a restart). */
  private roll(day: number): void {
    if (day === this.day) return;
    this.day = day;
    this.sent.clear();
    this.reserved.clear();
    const rows = prepared(
      this.db,
      'SELECT sender, destination, n FROM warmup_counts WHERE day = ?',
    ).all(day) as { sender: string; destination: string; n: number }[];
    for (const r of rows) this.sent.set(key(r.sender, r.destination), Number(r.n));
  }
}

function key(sender: string, destination: string): string {
  return `${sender}\0${destination}`;
}

/** Add delivered messages to a day's count; in the transaction that records them. */
export function warmupCount(c: WarmupCount): Statement {
  return counterStatement(
    `INSERT INTO warmup_counts (sender, destination, day, n) VALUES (?, ?, ?, ?)
     ON CONFLICT (sender, destination, day) DO UPDATE SET n = warmup_counts.n + excluded.n`,
    c.sender,
    c.destination,
    c.day,
    c.n,
  );
}

/** Forget the counts of days before `before` (a time), as the delivery log is forgotten. */
/** Retention: the counts of days before `before`. */
export function warmupRetention(before: number): Statement {
  return statement('DELETE FROM warmup_counts WHERE day < ?', epochDay(before));
}
