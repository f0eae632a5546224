/**
 * `posta queue`: reading and acting on the queue database directly, beside a
 * running server (SQLite WAL lets both at once). The server polls for due
 * work every second, so a flush here takes effect within a second; a delete
 * removes the message and its recipients, and an attempt in flight for it
 * finds nothing left to record.
 */
import { prepared, type Db } from '../db/db.ts';
import { listMessages, storedMessage, type QueuedMessage, type RecipientState } from './spool.ts';
import { readHeader } from '../message/header.ts';
import { WARMUP_HOLD } from '../warmup/warmup.ts';
import { headerList, mailRecord } from '../events/events.ts';

export interface QueueEntry extends Omit<QueuedMessage, 'recipients'> {
  recipients: (RecipientState & { held: boolean })[];
}

export interface LoggedAttempt {
  recipient: string;
  at: number;
  durationMs: number;
  outcome: string;
  reply: string;
  mx: string | null;
  ip: string | null;
  tls: string | null;
  tlsVerified: boolean | null;
}

export interface MessageDetail {
  id: string;
  /** The message, when it is still queued. */
  queued: QueueEntry | null;
  subject: string | null;
  from: string[];
  /** The header fields: the queued message's, else those the events kept (account mail). */
  headers: { name: string; value: string }[];
  attempts: LoggedAttempt[];
}

/** The queue with each recipient's state, or only the message `id`. */
export function queueEntries(db: Db, id?: string): QueueEntry[] {
  const rcpts = db.prepare(
    'SELECT address, state, attempts, next_attempt, last_reply FROM recipients WHERE message = ? ORDER BY address',
  );
  return listMessages(db, id).map((m) => ({
    ...m,
    recipients: (rcpts.all(m.id) as RecipientRow[]).map(recipientState),
  }));
}

/** A row of recipients (address, state, attempts, next_attempt, last_reply), from either engine. */
export type RecipientRow = Record<string, string | number | null>;

export function recipientState(r: RecipientRow): QueueEntry['recipients'][number] {
  return {
    address: String(r.address),
    attempts: Number(r.attempts),
    nextAttempt: Number(r.next_attempt),
    lastReply: r.last_reply === null ? null : String(r.last_reply),
    held: r.state === 'held',
  };
}

/**
 * What a message's detail shows of its header: from the queued message's
 * `head`, else from the header fields its mail record kept (delivered mail
 * of our senders, events.ts).
 */
export function headerSummary(
  head: Buffer | null,
  recorded: () => MessageDetail['headers'],
): Pick<MessageDetail, 'subject' | 'from' | 'headers'> {
  if (head) {
    const header = readHeader(head);
    return {
      subject: header.subject ?? null,
      from: header.from,
      headers: headerList(head).headers,
    };
  }
  const headers = recorded();
  const field = (name: string) => headers.find((h) => h.name.toLowerCase() === name)?.value;
  return {
    subject: field('subject') ?? null,
    from: [field('from')].filter((v) => v !== undefined),
    headers,
  };
}

/** Attempt counts by outcome, each outcome there even when none. */
export function outcomeCounts(
  rows: { outcome: string; n: number | string }[],
): Record<string, number> {
  const out: Record<string, number> = { delivered: 0, transient: 0, permanent: 0, expired: 0 };
  for (const r of rows) out[r.outcome] = Number(r.n);
  return out;
}

/** The delivery log's lines of a message, as both engines store them. */
export const ATTEMPTS =
  'SELECT recipient, at, duration_ms, outcome, reply, mx, ip, tls, tls_verified FROM attempts';

/** A row of ATTEMPTS: numbers may be text (PostgreSQL's BIGINT), tls_verified 0/1 or a boolean. */
export type AttemptRow = Record<string, string | number | boolean | null>;

export function loggedAttempt(a: AttemptRow): LoggedAttempt {
  return {
    recipient: String(a.recipient),
    at: Number(a.at),
    durationMs: Number(a.duration_ms),
    outcome: String(a.outcome),
    reply: String(a.reply),
    mx: a.mx === null ? null : String(a.mx),
    ip: a.ip === null ? null : String(a.ip),
    tls: a.tls === null ? null : String(a.tls),
    tlsVerified: a.tls_verified === null ? null : a.tls_verified === 1 || a.tls_verified === true,
  };
}

export function messageDetail(db: Db, id: string): MessageDetail | null {
  const queued = queueEntries(db, id)[0] ?? null;
  const attempts = (
    db.prepare(`${ATTEMPTS} WHERE message = ? ORDER BY id`).all(id) as AttemptRow[]
  ).map(loggedAttempt);
  if (!queued && attempts.length === 0) return null;
  const head = storedMessage(db, id)?.head ?? null;
  const summary = headerSummary(head, () => mailRecord(db, id)?.headers ?? []);
  return { id, queued, ...summary, attempts };
}

/**
 * Made due now: a recipient that warm-up held gives back the part of its
 * wait it did not spend, which was to lengthen its lifetime (warmup/warmup.ts).
 */
const DUE_NOW = `next_attempt = :now, warmup_ms = CASE
    WHEN last_reply LIKE '${WARMUP_HOLD}%' AND next_attempt > :now
    THEN max(0, warmup_ms - (next_attempt - :now)) ELSE warmup_ms END`;

/** Make every waiting recipient due now; returns how many. */
export function flushQueue(db: Db, now = Date.now()): number {
  return Number(
    db
      .prepare(`UPDATE recipients SET ${DUE_NOW} WHERE state = 'queued' AND next_attempt > :now`)
      .run({ now }).changes,
  );
}

/** Remove a message and its recipients; false when there is no such message. */
export function deleteMessage(db: Db, id: string): boolean {
  return Number(db.prepare('DELETE FROM messages WHERE id = ?').run(id).changes) > 0;
}

/** Queue counts for `posta status`: messages, and recipients never tried vs deferred. */
export function queueCounts(db: Db): { messages: number; queued: number; deferred: number } {
  const m = db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number };
  const r = db
    .prepare(
      "SELECT sum(attempts = 0) AS queued, sum(attempts > 0) AS deferred FROM recipients WHERE state = 'queued'",
    )
    .get() as { queued: number | null; deferred: number | null };
  return { messages: m.n, queued: r.queued ?? 0, deferred: r.deferred ?? 0 };
}

/** Delivery attempts since `since` (ms), by outcome. */
export function attemptCounts(db: Db, since: number): Record<string, number> {
  const rows = db
    .prepare('SELECT outcome, count(*) AS n FROM attempts WHERE at >= ? GROUP BY outcome')
    .all(since) as { outcome: string; n: number }[];
  return outcomeCounts(rows);
}

/** Make the waiting recipients of one message due now; returns how many. */
export function retryMessage(db: Db, id: string, now = Date.now()): number {
  return Number(
    db
      .prepare(`UPDATE recipients SET ${DUE_NOW} WHERE message = :id AND state = 'queued'`)
      .run({ now, id }).changes,
  );
}

export interface Found {
  id: string;
  /** When it was accepted, or first tried when only the delivery log has it. */
  at: number;
  sender: string | null;
  recipients: string[];
  subject: string | null;
  /** queued, or the last outcome the delivery log has. */
  state: string;
}

export type SearchField = 'any' | 'to' | 'from' | 'subject' | 'msgid' | 'id';

/**
 * Messages whose recipient, sender, subject, Message-ID or queue id holds
 * `text` (case-insensitive), newest first: the queue, the delivery log and
 * the events' mail records (30 days). A scan of those tables, without an
 * index for substrings; fine for a dashboard's search box.
 */
export function searchMessages(
  db: Db,
  field: SearchField,
  text: string,
  o: { limit?: number; accept?: (id: string) => boolean } = {},
): Found[] {
  const limit = o.limit ?? 100;
  const like = `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const on = (f: SearchField) => field === 'any' || field === f;
  const parts: string[] = [];
  const args: string[] = [];
  const match = (table: string, id: string, col: string) => {
    parts.push(`SELECT ${id} AS m FROM ${table} WHERE ${col} LIKE ? ESCAPE '\\'`);
    args.push(like);
  };
  if (on('id')) {
    match('messages', 'id', 'id');
    match('attempts', 'message', 'message');
  }
  if (on('to')) {
    match('recipients', 'message', 'address');
    match('attempts', 'message', 'recipient');
    match('mail_log', 'message', 'recipients');
  }
  if (on('from')) {
    match('messages', 'id', 'sender');
    match('mail_log', 'message', 'sender');
  }
  if (on('msgid')) match('messages', 'id', 'message_id');
  // the subject: in the header block the events keep of account mail (events.ts)
  if (on('subject')) match('mail_log', 'message', 'headers');
  // newest first, read only as far as needed: some are dropped below (another
  // account's, a header field that holds the text but is not Subject)
  const ids = db
    .prepare(`SELECT m FROM (${parts.join(' UNION ')}) ORDER BY m DESC`)
    .iterate(...args) as Iterable<{ m: string }>;
  const found: Found[] = [];
  for (const { m: id } of ids) {
    if (found.length >= limit) break;
    if (o.accept && !o.accept(id)) continue;
    const d = messageDetail(db, id);
    const mail = mailRecord(db, id);
    if (!d && !mail) continue;
    if (field === 'subject' && !(d?.subject ?? '').toLowerCase().includes(text.toLowerCase()))
      continue;
    const last = d?.attempts.at(-1);
    found.push({
      id,
      at: d?.queued?.createdAt ?? mail?.createdAt ?? d?.attempts[0]?.at ?? 0,
      sender: d?.queued?.sender ?? mail?.sender ?? null,
      recipients: d?.queued?.recipients.map((r) => r.address) ??
        mail?.recipients ?? [...new Set(d?.attempts.map((a) => a.recipient))],
      subject: d?.subject ?? null,
      state: d?.queued ? 'queued' : (last?.outcome ?? 'sent'),
    });
  }
  return found;
}

/**
 * Hold a message: its waiting recipients are not tried until it is released
 * (an attempt already under way still ends and is recorded). Returns how many.
 */
export function holdMessage(db: Db, id: string): number {
  return Number(
    db
      .prepare("UPDATE recipients SET state = 'held' WHERE message = ? AND state = 'queued'")
      .run(id).changes,
  );
}

/** Release a held message: its recipients are due now. Returns how many. */
export function releaseMessage(db: Db, id: string, now = Date.now()): number {
  return Number(
    db
      .prepare(
        "UPDATE recipients SET state = 'queued', next_attempt = ? WHERE message = ? AND state = 'held'",
      )
      .run(now, id).changes,
  );
}

/**
 * What `posta queue` does, wherever the queue is: this SQLite database, or
 * PostgreSQL (store/postgres/inspect.ts), where it is the whole cluster's.
 */
export interface QueueView {
  entries: () => Promise<QueueEntry[]>;
  detail: (id: string) => Promise<MessageDetail | null>;
  flush: () => Promise<number>;
  remove: (id: string) => Promise<boolean>;
  hold: (id: string) => Promise<number>;
  release: (id: string) => Promise<number>;
}

export function sqliteQueueView(db: Db): QueueView {
  return {
    entries: () => Promise.resolve(queueEntries(db)),
    detail: (id) => Promise.resolve(messageDetail(db, id)),
    flush: () => Promise.resolve(flushQueue(db)),
    remove: (id) => Promise.resolve(deleteMessage(db, id)),
    hold: (id) => Promise.resolve(holdMessage(db, id)),
    release: (id) => Promise.resolve(releaseMessage(db, id)),
  };
}

export interface DestinationQueue {
  domain: string;
  recipients: number;
  deferred: number;
  held: number;
  /** When its oldest message was accepted. */
  oldest: number;
  /** A recent reply of its MX, when one was tried. */
  lastReply: string | null;
}

/** The waiting recipients by destination domain, the largest first. */
export function queueByDomain(db: Db): DestinationQueue[] {
  const rows = db
    .prepare(
      `SELECT r.domain AS domain, count(*) AS recipients,
              sum(r.attempts > 0 AND r.state = 'queued') AS deferred,
              sum(r.state = 'held') AS held, min(m.created_at) AS oldest
         FROM recipients r JOIN messages m ON m.id = r.message
        GROUP BY r.domain ORDER BY recipients DESC, r.domain`,
    )
    .all() as Record<string, string | number>[];
  // one scan: with max(), SQLite takes last_reply from the row of the latest next_attempt
  const replies = new Map(
    (
      db
        .prepare(
          `SELECT domain, last_reply, max(next_attempt) FROM recipients
            WHERE last_reply IS NOT NULL GROUP BY domain`,
        )
        .all() as { domain: string; last_reply: string }[]
    ).map((r) => [r.domain, r.last_reply]),
  );
  return rows.map((r) => ({
    domain: String(r.domain),
    recipients: Number(r.recipients),
    deferred: Number(r.deferred),
    held: Number(r.held),
    oldest: Number(r.oldest),
    lastReply: replies.get(String(r.domain)) ?? null,
  }));
}

/** The account that submitted a message (queued, or in the events' mail records), or null. */
export function messageAccount(db: Db, id: string): string | null {
  const row = (db.prepare('SELECT account FROM messages WHERE id = ?').get(id) ??
    db.prepare('SELECT account FROM mail_log WHERE message = ?').get(id)) as
    { account: string | null } | undefined;
  return row?.account?.toLowerCase() ?? null;
}

/**
 * Messages still queued that arrived before `before` from a sender of
 * `domain`, or DSNs posta made then: signed with the keys of that time
 * (`posta dkim rotate --finish` waits for them).
 */
export function queuedFromBefore(db: Db, domain: string, before: number): number {
  const r = prepared(
    db,
    `SELECT count(*) AS n FROM messages WHERE created_at < ?
        AND (sender = '' OR lower(substr(sender, instr(sender, '@') + 1)) = ?)`,
  ).get(before, domain.toLowerCase()) as { n: number };
  return r.n;
}
