/**
 * The durable spool: every message posta accepts, with its envelope, until
 * each recipient is delivered or bounced.
 *
 * Invariant: enqueue() resolves only after the message and its envelope are
 * committed with an fsync (db.ts: WAL, synchronous=FULL). The SMTP layer
 * replies 250 only then, so an acknowledged message survives kill -9 or a
 * power cut; an unacknowledged one is either wholly there or not at all.
 *
 * Group commit: messages that finish DATA while a commit is running are
 * gathered and written in the next single transaction, one fsync for all of
 * them, so throughput does not collapse to one fsync per message.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { openDb, transaction, type Db } from '../db/db.ts';

export interface Envelope {
  /** The envelope sender; "" for the null sender (bounces). */
  sender: string;
  recipients: string[];
  /** "submission" (from an account) or "inbound" (from another server). */
  source: 'submission' | 'inbound';
  /** The authenticated account, when there is one. */
  account?: string;
  clientIp: string;
  /** The Message-ID header, for logs and `posta queue`. */
  messageId?: string;
}

export interface QueuedMessage extends Envelope {
  id: string;
  createdAt: number;
  size: number;
}

const MIGRATIONS = [
  `CREATE TABLE messages (
     id TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     sender TEXT NOT NULL,
     source TEXT NOT NULL,
     account TEXT,
     client_ip TEXT NOT NULL,
     message_id TEXT,
     size INTEGER NOT NULL,
     data BLOB NOT NULL
   );
   CREATE TABLE recipients (
     message TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
     address TEXT NOT NULL,
     state TEXT NOT NULL DEFAULT 'queued',
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt INTEGER NOT NULL,
     last_reply TEXT,
     PRIMARY KEY (message, address)
   );
   CREATE INDEX recipients_due ON recipients(state, next_attempt);`,
];

/** Time-ordered, unique, safe in file names and logs: 10 chars of time, 8 of randomness. */
export function newQueueId(now = Date.now()): string {
  return now.toString(36).padStart(10, '0') + randomBytes(5).toString('hex').slice(0, 8);
}

interface Pending {
  id: string;
  envelope: Envelope;
  data: Buffer;
  resolve: (id: string) => void;
  reject: (err: Error) => void;
}

export class Spool {
  readonly db: Db;
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(dataDir: string) {
    this.db = openDb(join(dataDir, 'queue.db'), MIGRATIONS);
  }

  /** Resolves with the queue id once the message is on disk; rejects on a write error. */
  enqueue(envelope: Envelope, data: Buffer, id = newQueueId()): Promise<string> {
    return new Promise((resolve, reject) => {
      this.pending.push({ id, envelope, data, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.commit());
      }
    });
  }

  private commit(): void {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const now = Date.now();
    try {
      const insertMessage = this.db.prepare(
        `INSERT INTO messages (id, created_at, sender, source, account, client_ip, message_id, size, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      const insertRecipient = this.db.prepare(
        'INSERT OR IGNORE INTO recipients (message, address, next_attempt) VALUES (?, ?, ?)',
      );
      transaction(this.db, () => {
        for (const p of batch) {
          const e = p.envelope;
          insertMessage.run(
            p.id,
            now,
            e.sender,
            e.source,
            e.account ?? null,
            e.clientIp,
            e.messageId ?? null,
            p.data.length,
            p.data,
          );
          for (const r of e.recipients) insertRecipient.run(p.id, r, now);
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    for (const p of batch) p.resolve(p.id);
  }

  list(): QueuedMessage[] {
    const rows = this.db
      .prepare(
        `SELECT m.id, m.created_at, m.sender, m.source, m.account, m.client_ip, m.message_id, m.size,
                group_concat(r.address, ' ') AS rcpts
           FROM messages m LEFT JOIN recipients r ON r.message = m.id
          GROUP BY m.id ORDER BY m.id`,
      )
      .all() as Record<string, string | number | null>[];
    return rows.map((r) => ({
      id: String(r.id),
      createdAt: Number(r.created_at),
      sender: String(r.sender),
      source: r.source as Envelope['source'],
      account: r.account === null ? undefined : String(r.account),
      clientIp: String(r.client_ip),
      messageId: r.message_id === null ? undefined : String(r.message_id),
      size: Number(r.size),
      recipients: r.rcpts ? String(r.rcpts).split(' ') : [],
    }));
  }

  data(id: string): Buffer | null {
    const row = this.db.prepare('SELECT data FROM messages WHERE id = ?').get(id) as
      { data: Uint8Array } | undefined;
    return row ? Buffer.from(row.data) : null;
  }

  close(): void {
    if (this.pending.length) this.commit();
    this.db.close();
  }
}
