/**
 * The row of a new message, and what the queue's commits write beside it, as statements
 * (statement.ts) that either engine runs in the same transaction as the
 * message or the attempt they go with, so none of them can drift from the
 * queue:
 * - an accepted message: the day's count (stats/), its access key's quota
 *   use (keys/usage.ts), its unsubscribe link (unsubscribe/links.ts), and for
 *   our senders' mail its record and Send event (events/);
 * - an attempt: its count, its events, the hard bounces to suppress and the
 *   warm-up's count of deliveries;
 * - and what retention removes of all that once it is old.
 */
import {
  eventInsert,
  eventsRetention,
  mailInsert,
  mailRow,
  type MailValues,
} from '../events/events.ts';
import type { OutcomeWrites } from '../events/outcomes.ts';
import { sendCount, sendsRetention } from '../keys/usage.ts';
import type { Attempt, AttemptResult, Envelope } from '../queue/spool.ts';
import { acceptedCount, attemptCount, statsRetention } from '../stats/stats.ts';
import { suppression } from '../suppression/suppression.ts';
import { linkInsert } from '../unsubscribe/links.ts';
import { warmupCount, warmupRetention } from '../warmup/warmup.ts';
import { statement, type Statement } from './statement.ts';

/**
 * A new message's row (its recipients are the engine's own: one row each).
 * smtputf8 is 0 or 1, which PostgreSQL's boolean column reads as well.
 */
export function messageInsert(
  id: string,
  e: Envelope,
  now: number,
  data: Buffer,
  stored = { parts: 0, size: data.length },
): Statement {
  return statement(
    `INSERT INTO messages (id, created_at, sender, source, account, client_ip, message_id, size, data,
                           smtputf8, parts, sender_auth, api_key, tags)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    id,
    now,
    e.sender,
    e.source,
    e.account ?? null,
    e.clientIp,
    e.messageId ?? null,
    stored.size,
    data,
    Number(e.smtpUtf8 ?? false),
    stored.parts,
    e.senderAuth ? JSON.stringify(e.senderAuth) : null,
    e.apiKey ?? null,
    e.tags ? JSON.stringify(e.tags) : null,
  );
}

/**
 * The events' record of one of our senders' messages (source "submission"),
 * none for others; made before the commit, since it reads the header.
 */
export function mailOf(id: string, e: Envelope, head: Buffer): MailValues | undefined {
  if (e.source !== 'submission') return undefined;
  return mailRow({
    message: id,
    createdAt: Date.now(),
    sender: e.sender,
    apiKey: e.apiKey ?? null,
    account: e.account ?? null,
    tags: e.tags ?? {},
    recipients: e.recipients,
    head,
  });
}

/** One line of the delivery log (`posta queue show`); tls_verified 0/1 as smtputf8. */
export function attemptInsert(id: string, a: Attempt): Statement {
  return statement(
    `INSERT INTO attempts (message, recipient, at, duration_ms, outcome, reply, mx, ip, tls, tls_verified)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    id,
    a.recipient,
    a.at,
    a.durationMs,
    a.outcome,
    a.reply,
    a.mx ?? null,
    a.ip ?? null,
    a.tls ?? null,
    a.tlsVerified === undefined ? null : Number(a.tlsVerified),
  );
}

/** Beside a new message's row; `mail` from mailOf(). */
export function acceptWrites(
  id: string,
  e: Envelope,
  now: number,
  mail: MailValues | undefined,
): Statement[] {
  const out: Statement[] = [];
  // what the server accepted; not the DSNs it makes itself
  if (e.source !== 'bounce') out.push(acceptedCount(now));
  // the key's use commits with what it sent: the quota cannot drift from the queue
  if (e.apiKey) out.push(sendCount(e.apiKey, e.recipients.length, now));
  if (e.unsubscribe) out.push(linkInsert({ ...e.unsubscribe, message: id }, now));
  // our senders' mail has events: Send now, the outcomes as they come
  if (mail) {
    out.push(mailInsert(mail));
    out.push(
      eventInsert({ message: id, type: 'Send', at: now, recipients: e.recipients, detail: {} }),
    );
  }
  return out;
}

/** Beside an attempt's rows. */
export function attemptWrites(
  r: Pick<AttemptResult, 'attempts' | 'events' | 'suppress' | 'warmup'>,
): Statement[] {
  return [
    ...r.attempts.map(attemptCount),
    ...outcomeStatements({ events: r.events ?? [], suppress: r.suppress ?? [] }),
    ...(r.warmup ?? []).map(warmupCount),
  ];
}

/** Events and suppressions (of an attempt, or of a complaint). */
export function outcomeStatements(w: OutcomeWrites): Statement[] {
  return [...w.events.map(eventInsert), ...w.suppress.map((x) => suppression(x))];
}

/**
 * Retention: the delivery log, events, mail records and counts from before
 * `before` (the charts' and logs' 30 days), and key quota counts past their day.
 */
export function retention(before: number, now: number): Statement[] {
  return [
    statement('DELETE FROM attempts WHERE at < ?', before),
    sendsRetention(now),
    ...eventsRetention(before),
    statsRetention(before),
    warmupRetention(before),
  ];
}
