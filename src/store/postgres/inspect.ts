/**
 * `posta queue` on PostgreSQL (queue/inspect.ts QueueView): the queue of the
 * whole cluster, read and acted on beside the running nodes, on a connection
 * of its own that takes no node name. The same answers as on SQLite: a flush
 * or a release makes recipients due now (the nodes poll every second), a
 * hold keeps the scheduler off a message's waiting recipients, a delete
 * removes the message (an attempt in flight for it then finds nothing to
 * record: its lease is gone).
 */
import type { Pool } from 'pg';
import {
  ATTEMPTS,
  headerSummary,
  loggedAttempt,
  recipientState,
  type AttemptRow,
  type RecipientRow,
  type MessageDetail,
  type QueueEntry,
  type QueueView,
} from '../../queue/inspect.ts';
import { headerList } from '../../events/events.ts';
import { WARMUP_HOLD } from '../../warmup/warmup.ts';
import { queuedMessage, type MessageRow } from '../../queue/spool.ts';
import { storedMessage } from './body.ts';

/** As on SQLite (queue/inspect.ts DUE_NOW): a warm-up wait gives back what it did not spend. */
const DUE_NOW = `next_attempt = $1, warmup_ms = CASE
    WHEN last_reply LIKE '${WARMUP_HOLD}%' AND next_attempt > $1
    THEN greatest(0, warmup_ms - (next_attempt - $1)) ELSE warmup_ms END`;

export function pgQueueView(pool: Pool): QueueView {
  const entries = async (id?: string): Promise<QueueEntry[]> => {
    const { rows } = await pool.query<MessageRow>(
      `SELECT id, created_at, sender, source, account, client_ip, message_id, size, api_key
         FROM messages ${id === undefined ? '' : 'WHERE id = $1'} ORDER BY id`,
      id === undefined ? [] : [id],
    );
    const { rows: rcpts } = await pool.query<RecipientRow>(
      `SELECT message, address, state, attempts, next_attempt, last_reply FROM recipients
        WHERE message = ANY($1::text[]) ORDER BY message, address`,
      [rows.map((r) => String(r.id))],
    );
    const of = new Map<string, QueueEntry['recipients']>();
    for (const r of rcpts) {
      const list = of.get(String(r.message)) ?? [];
      list.push(recipientState(r));
      of.set(String(r.message), list);
    }
    return rows.map((r) => ({ ...queuedMessage(r), recipients: of.get(String(r.id)) ?? [] }));
  };
  const count = async (sql: string, args: unknown[]) => (await pool.query(sql, args)).rowCount ?? 0;
  return {
    entries: () => entries(),
    async detail(id): Promise<MessageDetail | null> {
      const queued = (await entries(id))[0] ?? null;
      const { rows } = await pool.query<AttemptRow>(`${ATTEMPTS} WHERE message = $1 ORDER BY id`, [
        id,
      ]);
      const attempts = rows.map(loggedAttempt);
      if (!queued && attempts.length === 0) return null;
      const head = (await storedMessage(pool, id))?.head ?? null;
      // delivered: the header fields the mail record of our senders' mail keeps
      const { rows: mail } = head
        ? { rows: [] }
        : await pool.query<{ headers: string }>('SELECT headers FROM mail_log WHERE message = $1', [
            id,
          ]);
      const recorded = () =>
        mail[0] ? headerList(Buffer.from(mail[0].headers, 'utf8')).headers : [];
      return { id, queued, ...headerSummary(head, recorded), attempts };
    },
    flush: () =>
      count(`UPDATE recipients SET ${DUE_NOW} WHERE state = 'queued' AND next_attempt > $1`, [
        Date.now(),
      ]),
    remove: async (id) => (await count('DELETE FROM messages WHERE id = $1', [id])) > 0,
    hold: (id) =>
      count("UPDATE recipients SET state = 'held' WHERE message = $1 AND state = 'queued'", [id]),
    release: (id) =>
      count(
        "UPDATE recipients SET state = 'queued', next_attempt = $1 WHERE message = $2 AND state = 'held'",
        [Date.now(), id],
      ),
  };
}
