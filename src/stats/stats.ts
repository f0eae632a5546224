/**
 * Delivery statistics for the dashboard's charts, per minute, in the queue's
 * database: counted in the same transaction as what they count (a message's
 * acceptance, an attempt's outcome), as Postal counts its stats, so they are
 * neither scraped from /metrics nor lost with a restart, and never disagree
 * with the queue. Outcomes are per recipient, by destination class
 * (metrics/domain-class.ts: google, microsoft, yahoo, apple, other);
 * acceptances per message, with class '-'.
 */
import { prepared, type Db } from '../db/db.ts';
import { counterStatement, statement, type Statement } from '../store/statement.ts';
import { domainClass, type DomainClass } from '../metrics/domain-class.ts';
import type { Attempt } from '../queue/spool.ts';

export type StatOutcome = 'accepted' | 'delivered' | 'deferred' | 'bounced';
export const STAT_OUTCOMES: readonly StatOutcome[] = [
  'accepted',
  'delivered',
  'deferred',
  'bounced',
];
export const CLASSES: readonly DomainClass[] = ['google', 'microsoft', 'yahoo', 'apple', 'other'];

const MINUTE = 60_000;

function count(at: number, outcome: StatOutcome, cls: string, n = 1): Statement {
  return counterStatement(
    `INSERT INTO stats (minute, outcome, class, n) VALUES (?, ?, ?, ?)
     ON CONFLICT (minute, outcome, class) DO UPDATE SET n = stats.n + excluded.n`,
    Math.floor(at / MINUTE),
    outcome,
    cls,
    n,
  );
}

/** A message was accepted: counted in its enqueue's transaction. */
export function acceptedCount(at: number): Statement {
  return count(at, 'accepted', '-');
}

const OF_ATTEMPT: Record<Attempt['outcome'], StatOutcome> = {
  delivered: 'delivered',
  transient: 'deferred',
  permanent: 'bounced',
  expired: 'bounced',
};

/** An attempt's outcome for one recipient: counted in the transaction that records it. */
export function attemptCount(a: Pick<Attempt, 'at' | 'outcome' | 'recipient'>): Statement {
  const domain = a.recipient.slice(a.recipient.lastIndexOf('@') + 1).toLowerCase();
  return count(a.at, OF_ATTEMPT[a.outcome], domainClass(domain));
}

export interface Series {
  /** The start of each bucket, in seconds (as uPlot takes time). */
  t: number[];
  counts: Record<StatOutcome, number[]>;
}

/** Counts per bucket of `bucketMs` (a multiple of a minute) over the `buckets` before `now`. */
export function statSeries(db: Db, bucketMs: number, buckets: number, now = Date.now()): Series {
  const per = bucketMs / MINUTE;
  const last = Math.floor(now / bucketMs);
  const first = last - buckets + 1;
  // node:sqlite may bind `per` as REAL: the CAST keeps each bucket whole
  const rows = prepared(
    db,
    `SELECT CAST(minute / ? AS INTEGER) AS bucket, outcome, sum(n) AS n FROM stats
      WHERE minute >= ? GROUP BY bucket, outcome`,
  ).all(per, first * per) as { bucket: number; outcome: StatOutcome; n: number }[];
  const t = Array.from({ length: buckets }, (_, i) => ((first + i) * bucketMs) / 1000);
  const counts = Object.fromEntries(
    STAT_OUTCOMES.map((o) => [o, new Array<number>(buckets).fill(0)]),
  ) as Record<StatOutcome, number[]>;
  for (const r of rows) {
    const i = r.bucket - first;
    if (i >= 0 && i < buckets) counts[r.outcome][i] = r.n;
  }
  return { t, counts };
}

export interface Destination {
  class: DomainClass;
  delivered: number;
  deferred: number;
  bounced: number;
}

/** Outcomes since `since` by destination class, every class listed. */
export function destinations(db: Db, since: number): Destination[] {
  const rows = prepared(
    db,
    `SELECT class, outcome, sum(n) AS n FROM stats
      WHERE minute >= ? AND outcome != 'accepted' GROUP BY class, outcome`,
  ).all(Math.floor(since / MINUTE)) as { class: DomainClass; outcome: StatOutcome; n: number }[];
  return CLASSES.map((c) => {
    const of = (o: StatOutcome) => rows.find((r) => r.class === c && r.outcome === o)?.n ?? 0;
    return {
      class: c,
      delivered: of('delivered'),
      deferred: of('deferred'),
      bounced: of('bounced'),
    };
  });
}

/** Forget minutes before `before`, as the delivery log is forgotten. */
/** Retention: the counts of minutes before `before`. */
export function statsRetention(before: number): Statement {
  return statement('DELETE FROM stats WHERE minute < ?', Math.floor(before / MINUTE));
}
