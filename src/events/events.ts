/**
 * What happened to each message posta's own senders sent (SMTP submission,
 * `posta sendmail`, the APIs), as SES reports it: Send when it is queued,
 * then per recipient Delivery, DeliveryDelay or Bounce (Permanent or
 * Transient, with SES's subtypes). Events are written in the transaction
 * that records the outcome (queue/spool.ts), so an event exists exactly when
 * its outcome does; they are the durable log that `posta events` reads and
 * webhooks are sent from.
 *
 * mail_log keeps, per message, what an SES event's `mail` object says
 * (sender, recipients, tags, key, its header block as text), for as long as
 * its events, since the message row itself goes with its last recipient.
 *
 * Tables (queue.db):
 *   mail_log(message, created_at, sender, api_key, tags, recipients, headers)
 *   events(id, message, type, at, recipients, detail)  -- JSON in the last three
 */
import { statement, type Statement } from '../store/statement.ts';
import { prepared, type Db } from '../db/db.ts';
import { newQueueId } from '../queue/id.ts';

/**
 * SES's types that posta has: it never takes a message and then refuses it
 * (Reject). Subscription: the recipient unsubscribed through the message's
 * List-Unsubscribe (unsubscribe/).
 */
export type EventType =
  'Send' | 'Delivery' | 'DeliveryDelay' | 'Bounce' | 'Complaint' | 'Subscription';

export interface NewEvent {
  message: string;
  type: EventType;
  at: number;
  recipients: string[];
  /** The SES sub-object of the event (bounce, delivery, deliveryDelay, ...), without mail. */
  detail: Record<string, unknown>;
}

export interface StoredEvent extends NewEvent {
  id: number;
}

export interface MailRecord {
  message: string;
  createdAt: number;
  sender: string;
  apiKey: string | null;
  tags: Record<string, string[]>;
  recipients: string[];
  /** The message's header fields, in order, as SES lists them; at most MAX_HEADERS. */
  headers: { name: string; value: string }[];
  headersTruncated: boolean;
  /** The account that submitted it, when one did (SMTP AUTH's user). */
  account: string | null;
}

/** SES gives the first header fields, each shortened; so does posta. */
const MAX_HEADERS = 50;
const MAX_VALUE = 2000;

/** The header fields of a header block (RFC 5322 §2.2, unfolded), for mail_log. */
export function headerList(head: Buffer): { headers: MailRecord['headers']; truncated: boolean } {
  const end = head.indexOf('\r\n\r\n');
  const text = (end < 0 ? head : head.subarray(0, end)).toString('utf8');
  const fields: { name: string; value: string }[] = [];
  for (const line of text.split('\r\n')) {
    const last = fields[fields.length - 1];
    if (/^[ \t]/.test(line) && last) last.value += line;
    else {
      const colon = line.indexOf(':');
      if (colon > 0)
        fields.push({ name: line.slice(0, colon), value: line.slice(colon + 1).trim() });
    }
  }
  let truncated = fields.length > MAX_HEADERS;
  const headers = fields.slice(0, MAX_HEADERS).map((f) => {
    if (f.value.length <= MAX_VALUE) return f;
    truncated = true;
    return { name: f.name, value: f.value.slice(0, MAX_VALUE) };
  });
  return { headers, truncated };
}

/** A mail record as its row's values, made before the commit that writes it (its JSON off the transaction). */
export interface MailValues {
  values: [string, number, string, string | null, string, string, string, string | null];
}

/** The header block is kept as it is (as text) and read into fields only when an event is built. */
export function mailRow(m: {
  message: string;
  createdAt: number;
  sender: string;
  apiKey: string | null;
  tags: Record<string, string[]>;
  recipients: string[];
  head: Buffer;
  /** The account that submitted it (SMTP AUTH's user), when one did. */
  account?: string | null;
}): MailValues {
  const end = m.head.indexOf('\r\n\r\n');
  return {
    values: [
      m.message,
      m.createdAt,
      m.sender,
      m.apiKey,
      JSON.stringify(m.tags),
      JSON.stringify(m.recipients),
      (end < 0 ? m.head : m.head.subarray(0, end + 2)).toString('utf8'),
      m.account ?? null,
    ],
  };
}

export function mailInsert(row: MailValues): Statement {
  return statement(
    `INSERT INTO mail_log (message, created_at, sender, api_key, tags, recipients, headers, account)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ...row.values,
  );
}

export function eventInsert(e: NewEvent): Statement {
  return statement(
    'INSERT INTO events (message, type, at, recipients, detail) VALUES (?, ?, ?, ?, ?)',
    e.message,
    e.type,
    e.at,
    JSON.stringify(e.recipients),
    JSON.stringify(e.detail),
  );
}

interface EventRow {
  id: number;
  message: string;
  type: string;
  at: number;
  recipients: string;
  detail: string;
}

function fromRow(r: EventRow): StoredEvent {
  return {
    id: r.id,
    message: r.message,
    type: r.type as EventType,
    at: r.at,
    recipients: JSON.parse(r.recipients) as string[],
    detail: JSON.parse(r.detail) as Record<string, unknown>,
  };
}

/** Events in order: of one message, or after event `after`, at most `limit`. */
export function listEvents(
  db: Db,
  o: { message?: string; after?: number; limit?: number } = {},
): StoredEvent[] {
  const limit = o.limit ?? 1000;
  const rows =
    o.message !== undefined
      ? prepared(db, 'SELECT * FROM events WHERE message = ? ORDER BY id LIMIT ?').all(
          o.message,
          limit,
        )
      : prepared(db, 'SELECT * FROM events WHERE id > ? ORDER BY id LIMIT ?').all(
          o.after ?? 0,
          limit,
        );
  return (rows as unknown as EventRow[]).map(fromRow);
}

/** The newest event's id (0 when there is none). */
export function lastEventId(db: Db): number {
  const r = prepared(db, 'SELECT coalesce(max(id), 0) AS id FROM events').get() as { id: number };
  return r.id;
}

interface MailRow {
  message: string;
  created_at: number;
  sender: string;
  api_key: string | null;
  tags: string;
  recipients: string;
  headers: string;
  account: string | null;
}

export function mailRecord(db: Db, message: string): MailRecord | undefined {
  const r = prepared(db, 'SELECT * FROM mail_log WHERE message = ?').get(message) as
    MailRow | undefined;
  if (!r) return undefined;
  const h = headerList(Buffer.from(r.headers, 'utf8'));
  return {
    message: r.message,
    createdAt: r.created_at,
    sender: r.sender,
    apiKey: r.api_key,
    tags: JSON.parse(r.tags) as Record<string, string[]>,
    recipients: JSON.parse(r.recipients) as string[],
    headers: h.headers,
    headersTruncated: h.truncated,
    account: r.account,
  };
}

/** Events and mail records older than `before` go, as the delivery log does. */
/** Retention: the events and mail records from before `before`. */
export function eventsRetention(before: number): Statement[] {
  return [
    // ids grow with time: the scan in id order stops at the first event to
    // keep; the newest always stays, so that ids go on from it
    statement(
      `DELETE FROM events WHERE id < coalesce(
         (SELECT id FROM events WHERE at >= ? ORDER BY id LIMIT 1),
         (SELECT max(id) FROM events))`,
      before,
    ),
    // queue ids begin with their time (queue/spool.ts newQueueId): a key range
    statement('DELETE FROM mail_log WHERE message < ?', newQueueId(before).slice(0, 10)),
  ];
}

/** SES v1 GetSendStatistics: per 15 minutes of the last two weeks, what a key's mail did. */
export interface SendDataPoint {
  timestamp: number;
  deliveryAttempts: number;
  bounces: number;
  complaints: number;
  rejects: number;
}

export function sendStatistics(db: Db, apiKey: string, now = Date.now()): SendDataPoint[] {
  // integer division by a literal: a bound JS number would divide as a real
  const rows = prepared(
    db,
    `SELECT (e.at / 900000) * 900000 AS t,
            sum(CASE WHEN e.type = 'Send' THEN json_array_length(e.recipients) ELSE 0 END) AS sent,
            sum(e.type = 'Bounce') AS bounces,
            sum(e.type = 'Complaint') AS complaints,
            0 AS rejects
       FROM events e JOIN mail_log m ON m.message = e.message
      WHERE m.api_key = ? AND e.at >= ?
      GROUP BY t ORDER BY t`,
  ).all(apiKey, now - 14 * 86_400_000) as {
    t: number;
    sent: number;
    bounces: number;
    complaints: number;
    rejects: number;
  }[];
  return rows.map((r) => ({
    timestamp: r.t,
    deliveryAttempts: r.sent,
    bounces: r.bounces,
    complaints: r.complaints,
    rejects: r.rejects,
  }));
}
