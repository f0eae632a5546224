/**
 * What each access key sent, per minute: the count behind its daily quota
 * (SES's Max24HourSend and SentLast24Hours), written in the transaction that
 * queues the message, so a 250 or a MessageId and the count go together.
 * SES counts recipients, not messages: a message to 3 counts 3.
 *
 * Table key_sends (queue.db): key, minute (Unix minutes), count.
 */
import { counterStatement, runSqlite, statement, type Statement } from '../store/statement.ts';
import { prepared, type Db } from '../db/db.ts';

export const DAY_MS = 86_400_000;

export function sendCount(key: string, recipients: number, now: number): Statement {
  return counterStatement(
    `INSERT INTO key_sends (key, minute, count) VALUES (?, ?, ?)
       ON CONFLICT (key, minute) DO UPDATE SET count = key_sends.count + excluded.count`,
    key,
    Math.floor(now / 60_000),
    recipients,
  );
}

export function countSend(db: Db, key: string, recipients: number, now: number): void {
  runSqlite(db, sendCount(key, recipients, now));
}

/** Recipients sent to with `key` in the 24 hours before `now`. */
export function sentLast24Hours(db: Db, key: string, now = Date.now()): number {
  const row = prepared(
    db,
    'SELECT coalesce(sum(count), 0) AS n FROM key_sends WHERE key = ? AND minute > ?',
  ).get(key, Math.floor((now - DAY_MS) / 60_000)) as { n: number };
  return row.n;
}

/** Per-minute counts older than a day are of no more use. */
/** Retention: a key's counts older than the day its quota looks at. */
export function sendsRetention(now: number): Statement {
  return statement('DELETE FROM key_sends WHERE minute <= ?', Math.floor((now - DAY_MS) / 60_000));
}
