/**
 * The complaint rate of each sending domain: recipients who reported its mail
 * as spam (Complaint events, from feedback loop reports: complaints.ts) per
 * recipient its mail was delivered to (Delivery events), over the last
 * WINDOW_DAYS. Gmail's and Yahoo's rules for bulk senders (February 2024)
 * ask to stay below 0.1% and never to reach 0.3%, as their postmaster tools
 * measure it; past COMPLAINT_LIMIT posta warns in `posta status` and on the
 * dashboard. A provider measures only its own users, so this rate over all
 * receivers is a lower bound on what the worst of them sees.
 *
 * The sending domain is the envelope sender's (mail_log.sender), as the
 * suppression list keys it. Events ids grow with time (events.ts), so the
 * window is an id range, whose start a binary search over the primary key
 * finds without reading the older events.
 */
import { prepared, type Db } from '../db/db.ts';

export const WINDOW_DAYS = 7;
/** Gmail's and Yahoo's line: a spam rate at or past 0.3% hurts delivery. */
export const COMPLAINT_LIMIT = 0.003;
/** What they ask to stay below. */
export const COMPLAINT_TARGET = 0.001;

export interface ComplaintRate {
  domain: string;
  delivered: number;
  complaints: number;
  /** complaints / delivered; 0 with nothing delivered. */
  rate: number;
  /** At or past COMPLAINT_LIMIT. */
  over: boolean;
}

/** Every sending domain with a delivery or a complaint in the window, by name. */
export function complaintRates(db: Db, now = Date.now()): ComplaintRate[] {
  const first = firstEventSince(db, now - WINDOW_DAYS * 86_400_000);
  if (first === undefined) return [];
  const rows = prepared(
    db,
    `SELECT lower(substr(m.sender, instr(m.sender, '@') + 1)) AS domain,
            sum(CASE WHEN e.type = 'Delivery' THEN json_array_length(e.recipients) ELSE 0 END) AS delivered,
            sum(CASE WHEN e.type = 'Complaint' THEN json_array_length(e.recipients) ELSE 0 END) AS complaints
       FROM events e JOIN mail_log m ON m.message = e.message
      WHERE e.id >= ?
        AND e.type IN ('Delivery', 'Complaint') AND m.sender LIKE '%@%'
      GROUP BY domain ORDER BY domain`,
  ).all(first) as { domain: string; delivered: number; complaints: number }[];
  return rows.map((r) => {
    const rate = r.delivered > 0 ? r.complaints / r.delivered : r.complaints > 0 ? 1 : 0;
    return { ...r, rate, over: rate >= COMPLAINT_LIMIT };
  });
}

/** The first event id at or after `since`, by binary search (ids grow with time). */
function firstEventSince(db: Db, since: number): number | undefined {
  const b = prepared(db, 'SELECT min(id) AS lo, max(id) AS hi FROM events').get() as {
    lo: number | null;
    hi: number | null;
  };
  if (b.lo === null || b.hi === null) return undefined;
  const next = prepared(db, 'SELECT id, at FROM events WHERE id >= ? ORDER BY id LIMIT 1');
  let lo = b.lo;
  let hi = b.hi + 1;
  let found: number | undefined;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    const r = next.get(mid) as { id: number; at: number } | undefined;
    if (r && r.at >= since) {
      found = r.id; // the answer is r.id, or an id below mid
      hi = mid;
    } else {
      lo = (r?.id ?? hi) + 1;
    }
  }
  return found;
}

/**
 * complaintRates() at most once per `ms`: it scans the week's events, and
 * the dashboard's live counters ask for the status every few seconds.
 */
export function complaintRatesEvery(db: Db, ms: number): () => ComplaintRate[] {
  let last: { at: number; rates: ComplaintRate[] } | undefined;
  return () => {
    const now = Date.now();
    if (!last || now - last.at >= ms) last = { at: now, rates: complaintRates(db, now) };
    return last.rates;
  };
}

/** "0.25%": two decimals, as the postmaster tools show it. */
export function percent(rate: number): string {
  return `${(rate * 100).toFixed(2)}%`;
}
