/**
 * The durable spool: every message posta accepts, with its envelope, until
 * each recipient is delivered or bounced.
 *
 * Invariant: enqueue() resolves only after the message and its envelope are
 * committed and the WAL file holding the commit is fdatasync'd (WAL mode,
 * synchronous=NORMAL for this connection, and the sync in wal-sync.ts, off
 * the event loop). The SMTP layer replies 250 only then, so an acknowledged
 * message survives kill -9 or a power cut; an unacknowledged one is either
 * wholly there or not at all.
 *
 * Group commit: every write (a new message, the results of a delivery
 * attempt) is queued and the writes of one turn of the event loop are
 * committed in one transaction, and a durable one waits for one sync with
 * all the commits made while the previous sync ran, so throughput does not
 * collapse to one fsync per message. Each write runs in its own savepoint, so
 * one failing write does not take the others down with it.
 *
 * Recipients: a row per recipient still to be delivered, with its attempt
 * count and next attempt time. A recipient that is delivered or has failed
 * for good is removed, and the message with its last recipient; every attempt
 * stays in `attempts`, the delivery log that `posta queue show` reads.
 *
 * Large bodies: a message that arrived through a file (message/held.ts)
 * is stored as rows of PART_SIZE bytes in `message_parts`, written one row
 * per statement (without an fsync of its own) before the message row, so
 * that the write does not stall the event loop for the whole message. The message exists
 * only once its row is committed (in the group commit, synced before the
 * 250); parts without a message row (a crash or a refusal in between) are
 * removed by sweep() at start, and parts go with their message (a trigger).
 * Delivery streams them back one row at a time.
 *
 * Delivery is at least once: results of an attempt are committed after the
 * receiving server said 250, so a crash in between sends the message again.
 *
 * What need not survive a power cut waits for no sync: the results of an
 * attempt that creates no message (a DSN does), and the parts of a large
 * body. In WAL mode such a commit survives kill -9 (it is in the WAL, in the
 * OS's cache), and the next sync, of the same WAL, makes it durable too: a
 * message row's sync makes its parts durable with it. A power cut can lose
 * only results not yet followed by a sync, and then the message is delivered
 * again, which at least once allows.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { inParts, type BodyFile, type Held } from '../message/held.ts';
import { headerBlock } from '../message/header.ts';
import { PostaError } from '../errors.ts';
import { openDb, prepared, transaction, type Db } from '../db/db.ts';
import { fsErrorSentence, ownerOf } from '../fsutil/errors.ts';
import type { SenderAuth } from '../verify/inbound.ts';
import { WalSync } from './wal-sync.ts';
import { Checkpointer, HOLD_BYTES, type CheckpointRunner } from './checkpoint.ts';
import { newQueueId } from './id.ts';
import { countSend } from '../keys/usage.ts';
import type { MailValues, NewEvent } from '../events/events.ts';
import type { OutcomeWrites } from '../events/outcomes.ts';
import { pruneWebhookLog } from '../events/webhooks.ts';
import { WARMUP_HOLD, type WarmupCount } from '../warmup/warmup.ts';
import { insertReport, pruneReports, type NewReport, type Stored } from '../reports/store.ts';
import type { NewLink } from '../unsubscribe/links.ts';
import { runSqlite } from '../store/statement.ts';
import {
  acceptWrites,
  attemptInsert,
  attemptWrites,
  mailOf,
  messageInsert,
  outcomeStatements,
  retention,
} from '../store/queue-writes.ts';

export interface Envelope {
  /** The envelope sender; "" for the null sender (bounces). */
  sender: string;
  recipients: string[];
  /** "submission" (from an account), "inbound" (from another server) or "bounce" (made by posta). */
  source: 'submission' | 'inbound' | 'bounce';
  /** The authenticated account, when there is one. */
  account?: string;
  clientIp: string;
  /** The Message-ID header, for logs and `posta queue`. */
  messageId?: string;
  /**
   * The next hop must get SMTPUTF8 (RFC 6531 §3.4): the header is UTF-8 and
   * the client used SMTPUTF8 or is one of ours. Non-ASCII envelope addresses
   * need it too; delivery sees those itself.
   */
  smtpUtf8?: boolean;
  /**
   * Mail from another server (port 25): what was verified of its sender (SPF,
   * aligned DKIM). A DSN goes only to a verified sender; mail of our own
   * accounts has none and always gets its DSNs.
   */
  senderAuth?: SenderAuth;
  /** Sent through the API (or SMTP AUTH) with this access key: it counts in the key's quota. */
  apiKey?: string;
  /** The SES tags it was sent with (EmailTags, X-SES-MESSAGE-TAGS, the configuration set). */
  tags?: Record<string, string[]>;
  /** Its one-click unsubscribe link (unsubscribe/fields.ts), recorded in the same commit. */
  unsubscribe?: NewLink;
}

export interface QueuedMessage extends Envelope {
  id: string;
  createdAt: number;
  size: number;
}

export interface RecipientState {
  address: string;
  attempts: number;
  nextAttempt: number;
  lastReply: string | null;
}

/** One attempt for one recipient, as the delivery log keeps it. */
export interface Attempt {
  message: string;
  recipient: string;
  at: number;
  durationMs: number;
  /** delivered, transient, permanent, or expired (given up after the lifetime). */
  outcome: 'delivered' | 'transient' | 'permanent' | 'expired';
  reply: string;
  mx?: string;
  ip?: string;
  tls?: string;
  tlsVerified?: boolean;
}

/** Work for the delivery workers: a message's recipients that are due now. */
export interface DueMessage {
  id: string;
  createdAt: number;
  sender: string;
  source: Envelope['source'];
  warned: boolean;
  smtpUtf8: boolean;
  /** See Envelope.senderAuth; null for our own mail (and mail queued before it was recorded). */
  senderAuth: SenderAuth | null;
  /** warmupMs: how long warm-up held it (warmup/warmup.ts); its lifetime is that much longer. */
  recipients: { address: string; attempts: number; warmupMs: number }[];
}

/** What to write when an attempt ends; see Spool.record. */
export interface AttemptResult {
  attempts: Attempt[];
  /** Recipients to try again, with their next attempt time. */
  retry: Map<string, number>;
  /** Messages made by posta (bounces, warnings) to enqueue in the same commit. */
  notices: { id: string; envelope: Envelope; data: Buffer }[];
  warned?: boolean;
  /** The events of these attempts (events/outcomes.ts), committed with them. */
  events?: NewEvent[];
  /** Addresses that bounced hard, for their domain's suppression list. */
  suppress?: OutcomeWrites['suppress'];
  /** Deliveries to count in a warm-up (warmup/warmup.ts). */
  warmup?: WarmupCount[];
}

export const MIGRATIONS = [
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
  `CREATE TABLE attempts (
     id INTEGER PRIMARY KEY,
     message TEXT NOT NULL,
     recipient TEXT NOT NULL,
     at INTEGER NOT NULL,
     duration_ms INTEGER NOT NULL,
     outcome TEXT NOT NULL,
     reply TEXT NOT NULL,
     mx TEXT,
     ip TEXT,
     tls TEXT,
     tls_verified INTEGER
   );
   CREATE INDEX attempts_message ON attempts(message);
   CREATE INDEX attempts_at ON attempts(at);
   ALTER TABLE messages ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE sts_policies (
     domain TEXT PRIMARY KEY,
     policy TEXT NOT NULL,
     checked_at INTEGER NOT NULL
   );`,
  // due() for a few domains or messages without scanning every due recipient.
  // The domain is what follows the last "@", lower-cased, as domainOf() has it
  // (rtrim strips every character but "@" from the right).
  `ALTER TABLE recipients ADD COLUMN domain TEXT GENERATED ALWAYS AS
     (lower(substr(address, length(rtrim(address, replace(address, '@', ''))) + 1))) VIRTUAL;
   -- with the domain in it, the full query reads it from the index, not the row
   DROP INDEX recipients_due;
   CREATE INDEX recipients_due ON recipients(state, next_attempt, domain);
   CREATE INDEX recipients_domain_due ON recipients(state, domain, next_attempt);`,
  `ALTER TABLE messages ADD COLUMN smtputf8 INTEGER NOT NULL DEFAULT 0;`,
  // message parts: large bodies in PART_SIZE rows (data is then empty)
  `ALTER TABLE messages ADD COLUMN parts INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE message_parts (
     message TEXT NOT NULL,
     seq INTEGER NOT NULL,
     data BLOB NOT NULL,
     PRIMARY KEY (message, seq)
   );
   CREATE TRIGGER message_parts_gone AFTER DELETE ON messages
     BEGIN DELETE FROM message_parts WHERE message = old.id; END;`,
  // backscatter (issue 12): the sender verification of inbound mail, as JSON
  // {"spf": ..., "dkim": ...}; NULL for posta's own mail
  `ALTER TABLE messages ADD COLUMN sender_auth TEXT;`,
  // the SES APIs (issue 14): access keys (keys/keys.ts), what each key sent per
  // minute (its quota), and per message the key and the tags it was sent with
  `CREATE TABLE api_keys (
     id TEXT PRIMARY KEY,
     secret TEXT NOT NULL,
     name TEXT NOT NULL,
     domains TEXT NOT NULL,
     rate INTEGER NOT NULL,
     daily INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     revoked_at INTEGER
   );
   CREATE TABLE key_sends (
     key TEXT NOT NULL,
     minute INTEGER NOT NULL,
     count INTEGER NOT NULL,
     PRIMARY KEY (key, minute)
   ) WITHOUT ROWID;
   ALTER TABLE messages ADD COLUMN api_key TEXT;
   ALTER TABLE messages ADD COLUMN tags TEXT;`,
  // events of our senders' mail and the suppression list (events/,
  // suppression/); no index by time: both are pruned through their keys,
  // which grow with time (events.ts pruneEvents), so each message costs two
  // B-tree inserts here and no more
  `CREATE TABLE mail_log (
     message TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     sender TEXT NOT NULL,
     api_key TEXT,
     tags TEXT NOT NULL,
     recipients TEXT NOT NULL,
     headers TEXT NOT NULL
   ) WITHOUT ROWID;
   -- ids are never used again: a prune keeps the newest event, and a new
   -- one gets the highest id + 1 (webhook cursors, posta-event-id); no
   -- AUTOINCREMENT, which costs a write of sqlite_sequence per event
   CREATE TABLE events (
     id INTEGER PRIMARY KEY,
     message TEXT NOT NULL,
     type TEXT NOT NULL,
     at INTEGER NOT NULL,
     recipients TEXT NOT NULL,
     detail TEXT NOT NULL
   );
   CREATE INDEX events_message ON events(message);
   CREATE TABLE suppressed (
     domain TEXT NOT NULL,
     address TEXT NOT NULL,
     reason TEXT NOT NULL,
     message TEXT,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (domain, address)
   ) WITHOUT ROWID;`,
  // webhooks (events/webhooks.ts): each endpoint's cursor in the events, and its calls
  `CREATE TABLE webhook_state (
     endpoint TEXT PRIMARY KEY,
     last_event INTEGER NOT NULL,
     failures INTEGER NOT NULL,
     failing_since INTEGER,
     next_attempt INTEGER NOT NULL,
     confirmed INTEGER NOT NULL,
     token TEXT NOT NULL,
     secret TEXT NOT NULL
   );
   CREATE TABLE webhook_log (
     id INTEGER PRIMARY KEY,
     endpoint TEXT NOT NULL,
     event INTEGER,
     at INTEGER NOT NULL,
     status INTEGER,
     error TEXT,
     ms INTEGER NOT NULL
   );
   CREATE INDEX webhook_log_at ON webhook_log(at);`,
  // the Resend API's Idempotency-Key (api/idempotency.ts): per key and
  // idempotency key, the request's hash and the answer, for 24 hours
  `CREATE TABLE idempotency (
     key TEXT NOT NULL,
     idempotency_key TEXT NOT NULL,
     request TEXT NOT NULL,
     response TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (key, idempotency_key)
   ) WITHOUT ROWID;
   CREATE INDEX idempotency_created ON idempotency(created_at);`,
  // SES templates (api/templates.ts), per server as SES's are per account
  `CREATE TABLE email_templates (
     owner TEXT NOT NULL,
     name TEXT NOT NULL,
     subject TEXT,
     text TEXT,
     html TEXT,
     created_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (owner, name)
   ) WITHOUT ROWID;`,
  // the dashboard's one-time login links and sessions (web/dashboard/sessions.ts):
  // the SHA-256 of each token, never the token
  `CREATE TABLE admin_tokens (
     hash TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     csrf TEXT,
     account TEXT,
     expires_at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
  // the dashboard's charts (stats/stats.ts): per minute, outcome and destination class
  `CREATE TABLE stats (
     minute INTEGER NOT NULL,
     outcome TEXT NOT NULL,
     class TEXT NOT NULL,
     n INTEGER NOT NULL,
     PRIMARY KEY (minute, outcome, class)
   ) WITHOUT ROWID;`,
  // whose mail it is, for an account's own view of the dashboard
  `ALTER TABLE mail_log ADD COLUMN account TEXT;`,
  // one-click unsubscribe (unsubscribe/links.ts): each token given out, its
  // (domain, address) and the last message that carried it
  `CREATE TABLE unsubscribe_links (
     token TEXT PRIMARY KEY,
     domain TEXT NOT NULL,
     address TEXT NOT NULL,
     message TEXT NOT NULL,
     created_at INTEGER NOT NULL
   ) WITHOUT ROWID;`,
  // warm-up (warmup/warmup.ts): messages delivered per warm-up, destination
  // and UTC day; per recipient the time it was held by warm-up, which does
  // not count against the lifetime
  `CREATE TABLE warmup_counts (
     sender TEXT NOT NULL,
     destination TEXT NOT NULL,
     day INTEGER NOT NULL,
     n INTEGER NOT NULL,
     PRIMARY KEY (sender, destination, day)
   ) WITHOUT ROWID;
   ALTER TABLE recipients ADD COLUMN warmup_ms INTEGER NOT NULL DEFAULT 0;`,
  // DMARC aggregate and TLS-RPT reports sent to the domains' rua address
  // (reports/store.ts): one row per report, unique per reporter and report
  // id, its records or policies beside it; pruned by the time received
  `CREATE TABLE dmarc_reports (
     id INTEGER PRIMARY KEY,
     org TEXT NOT NULL,
     report_id TEXT NOT NULL,
     email TEXT NOT NULL,
     domain TEXT NOT NULL,
     policy TEXT NOT NULL,
     begin_at INTEGER NOT NULL,
     end_at INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     message TEXT NOT NULL,
     sender TEXT NOT NULL,
     verified INTEGER NOT NULL,
     UNIQUE (org, report_id)
   );
   CREATE INDEX dmarc_reports_received ON dmarc_reports (received_at);
   CREATE TABLE dmarc_records (
     report INTEGER NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
     source_ip TEXT NOT NULL,
     count INTEGER NOT NULL,
     disposition TEXT NOT NULL,
     dkim TEXT NOT NULL,
     spf TEXT NOT NULL,
     header_from TEXT NOT NULL,
     detail TEXT NOT NULL
   );
   CREATE INDEX dmarc_records_report ON dmarc_records (report);
   CREATE TABLE tls_reports (
     id INTEGER PRIMARY KEY,
     org TEXT NOT NULL,
     report_id TEXT NOT NULL,
     contact TEXT NOT NULL,
     begin_at INTEGER NOT NULL,
     end_at INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     message TEXT NOT NULL,
     sender TEXT NOT NULL,
     verified INTEGER NOT NULL,
     UNIQUE (org, report_id)
   );
   CREATE INDEX tls_reports_received ON tls_reports (received_at);
   CREATE TABLE tls_policies (
     report INTEGER NOT NULL REFERENCES tls_reports (id) ON DELETE CASCADE,
     type TEXT NOT NULL,
     domain TEXT NOT NULL,
     mx_hosts TEXT NOT NULL,
     successful INTEGER NOT NULL,
     failed INTEGER NOT NULL,
     failures TEXT NOT NULL
   );
   CREATE INDEX tls_policies_report ON tls_policies (report);`,
  // an account's dashboard session ends when its password changes or it goes (sessions.ts)
  `ALTER TABLE admin_tokens ADD COLUMN credential TEXT;`,
];

/** Bytes in one row of message_parts. */
export const PART_SIZE = 1024 * 1024;

/** A queued message for delivery: its size, header, and the whole as a stream. */
export interface StoredMessage {
  size: number;
  /** The header section, the empty line included (message/held.ts). */
  head: Buffer;
  /** The whole message from its start; each call a new stream. */
  open(): Readable;
}

export { newQueueId };

interface Pending {
  write: () => void;
  /** Must be on disk when it resolves (fsync'd): a new message. */
  durable: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

export function openQueueDb(dataDir: string): Db {
  return openDb(join(dataDir, 'queue.db'), MIGRATIONS);
}

/**
 * The queue for commands beside the server: an empty one in memory when
 * there is none yet, so that looking creates no data folder. A queue this
 * user may not read is an error that names its owner, not an empty queue.
 */
export function openQueueDbIfAny(dataDir: string): Db {
  const file = join(dataDir, 'queue.db');
  try {
    accessSync(file, constants.R_OK | constants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return openDb(':memory:', MIGRATIONS);
    throw new PostaError(fsErrorSentence(err, 'the queue') ?? (err as Error).message);
  }
  try {
    return openDb(file, MIGRATIONS);
  } catch (err) {
    const owner = ownerOf(file);
    throw new PostaError(
      `Cannot open the queue ${file} (${(err as Error).message}); run the command as ${owner === 'root' ? 'root' : `${owner} or as root`}.`,
    );
  }
}

/** A due recipient's row from either engine: numbers (or bigint's text), 0/1 (or booleans). */
export interface DueRecipientRow {
  message: string;
  address: string;
  attempts: number;
  warmup_ms: number | string;
  created_at: number | string;
  sender: string;
  source: string;
  warned: number | boolean;
  smtputf8: number | boolean;
  sender_auth: string | null;
}

/** Due recipients' rows as messages with their recipients, in the rows' order. */
export function groupDue(rows: readonly DueRecipientRow[]): DueMessage[] {
  const out = new Map<string, DueMessage>();
  for (const r of rows) {
    let m = out.get(r.message);
    if (!m) {
      m = {
        id: r.message,
        createdAt: Number(r.created_at),
        sender: r.sender,
        source: r.source as Envelope['source'],
        warned: r.warned === 1 || r.warned === true,
        smtpUtf8: r.smtputf8 === 1 || r.smtputf8 === true,
        senderAuth: r.sender_auth === null ? null : (JSON.parse(r.sender_auth) as SenderAuth),
        recipients: [],
      };
      out.set(r.message, m);
    }
    m.recipients.push({ address: r.address, attempts: r.attempts, warmupMs: Number(r.warmup_ms) });
  }
  return [...out.values()];
}

/** The spool's own: what the scope queries sort and filter by as well. */
interface DueRow extends DueRecipientRow {
  domain: string;
  next_attempt: number;
}

const DUE_COLUMNS = `r.message, r.address, r.domain, r.attempts, r.next_attempt, r.warmup_ms, m.created_at, m.sender,
                     m.source, m.warned, m.smtputf8, m.sender_auth`;

/** The due recipients of one message, through the primary key whatever the backlog. */
export const DUE_OF_MESSAGE = `SELECT ${DUE_COLUMNS}
                          FROM recipients r INDEXED BY sqlite_autoindex_recipients_1
                          JOIN messages m ON m.id = r.message
                         WHERE r.message = ? AND r.state = 'queued' AND r.next_attempt <= ?`;

/** Due recipients, oldest first, without busy messages and full domains; `and` narrows it. */
function dueQuery(and: string, index?: string): string {
  const recipients = index ? `recipients r INDEXED BY ${index}` : 'recipients r';
  return `SELECT ${DUE_COLUMNS}
            FROM ${recipients} JOIN messages m ON m.id = r.message
           WHERE r.state = 'queued' AND r.next_attempt <= ?
             AND r.message NOT IN (SELECT value FROM json_each(?))
             AND r.domain NOT IN (SELECT value FROM json_each(?))
             ${and}
           ORDER BY r.next_attempt, r.message LIMIT ?`;
}

export class Spool {
  readonly db: Db;
  private pending: Pending[] = [];
  private scheduled = false;
  /** Called with the ids of new messages once committed, so delivery can start at once. */
  onEnqueued: (ids: string[]) => void = () => {};

  private readonly wal: WalSync;
  private readonly walPath: string;

  /** The server's checkpoints, off the event loop (checkpoint.ts); null: SQLite's own, in COMMIT. */
  private readonly checkpoints: Checkpointer | null;

  /**
   * `checkpoints`: where the WAL's checkpoints run, off the event loop (the
   * server); without it the commits checkpoint themselves, which serves a
   * command that writes a message or two.
   */
  constructor(dataDir: string, checkpoints?: CheckpointRunner) {
    this.db = openQueueDb(dataDir);
    // durable writes are synced by this.wal, off the event loop (wal-sync.ts)
    this.db.exec('PRAGMA synchronous = NORMAL');
    this.walPath = join(dataDir, 'queue.db-wal');
    this.wal = new WalSync(this.walPath);
    this.checkpoints = null;
    if (checkpoints) {
      this.db.exec('PRAGMA wal_autocheckpoint = 0');
      // the WAL starts over this small, so its size tells the checkpoints when it grew
      this.db.exec(`PRAGMA journal_size_limit = ${HOLD_BYTES}`);
      this.checkpoints = new Checkpointer(join(dataDir, 'queue.db'), checkpoints);
    }
  }

  /**
   * Resolves with the queue id once the message is on disk; rejects on a
   * write error. A held message with its body in a file goes in as parts.
   */
  async enqueue(envelope: Envelope, data: Buffer | Held, id = newQueueId()): Promise<string> {
    try {
      if (Buffer.isBuffer(data)) {
        const mail = mailOf(id, envelope, headerBlock(data));
        await this.write(() => this.insert(id, envelope, data, Date.now(), mail));
      } else if (Buffer.isBuffer(data.body)) {
        const whole = Buffer.concat([data.head, data.body]);
        const mail = mailOf(id, envelope, data.head);
        await this.write(() => this.insert(id, envelope, whole, Date.now(), mail));
      } else {
        await this.enqueueParts(id, envelope, data, data.body);
      }
    } catch (err) {
      if (err instanceof SyncFailed) this.forget(id, envelope);
      throw err;
    }
    this.onEnqueued([id]);
    return id;
  }

  /** A body in a file: its parts first, then the message row once they are all there. */
  private async enqueueParts(
    id: string,
    envelope: Envelope,
    m: Held,
    body: BodyFile,
  ): Promise<void> {
    const { parts, size } = await this.writeParts(id, m, body);
    const empty = Buffer.alloc(0);
    const mail = mailOf(id, envelope, m.head);
    try {
      await this.write(() => {
        // The row commits only with every part beside it: a sweep by another
        // process on this folder, say, must make this a 451, not a torn message.
        const have = prepared(
          this.db,
          'SELECT count(*) AS n FROM message_parts WHERE message = ?',
        ).get(id) as { n: number };
        if (have.n !== parts) throw new Error(`message ${id} lost parts before its commit`);
        this.insert(id, envelope, empty, Date.now(), mail, { parts, size });
      });
    } catch (err) {
      // a refused or failed commit (a full disk) leaves no parts behind
      prepared(this.db, 'DELETE FROM message_parts WHERE message = ?').run(id);
      throw err;
    }
  }

  /**
   * A message committed whose sync failed: gone, so that what the client was
   * told to send again (a 451) is not delivered as well (its parts and
   * recipients go with it).
   */
  private forget(id: string, envelope: Envelope): void {
    try {
      transaction(this.db, () => {
        prepared(this.db, 'DELETE FROM messages WHERE id = ?').run(id);
        // what the same commit wrote beside it: no Send event, no quota use
        prepared(this.db, 'DELETE FROM events WHERE message = ?').run(id);
        prepared(this.db, 'DELETE FROM mail_log WHERE message = ?').run(id);
        if (envelope.apiKey)
          countSend(this.db, envelope.apiKey, -envelope.recipients.length, Date.now());
      });
    } catch {
      // the disk refuses this too: the message stays and is delivered as well
    }
  }

  /** Parts without a message: left by a crash or a refused write; run at start. */
  sweep(): void {
    this.db.exec('DELETE FROM message_parts WHERE message NOT IN (SELECT id FROM messages)');
  }

  /**
   * Records an attempt: the log lines, the recipients to retry, the notices
   * to send; recipients of the attempt not in `retry` are done and removed,
   * and the message with its last recipient. One commit for all of it.
   */
  async record(id: string, result: AttemptResult): Promise<void> {
    await this.write(() => {
      const retry = prepared(
        this.db,
        'UPDATE recipients SET attempts = attempts + 1, next_attempt = ?, last_reply = ? WHERE message = ? AND address = ?',
      );
      const done = prepared(this.db, 'DELETE FROM recipients WHERE message = ? AND address = ?');
      for (const a of result.attempts) {
        runSqlite(this.db, attemptInsert(id, a));
        const next = result.retry.get(a.recipient);
        if (next === undefined) done.run(id, a.recipient);
        else retry.run(next, a.reply, id, a.recipient);
      }
      if (result.warned) prepared(this.db, 'UPDATE messages SET warned = 1 WHERE id = ?').run(id);
      prepared(
        this.db,
        'DELETE FROM messages WHERE id = ? AND NOT EXISTS (SELECT 1 FROM recipients WHERE message = ?)',
      ).run(id, id);
      for (const n of result.notices) this.insert(n.id, n.envelope, n.data, Date.now(), undefined);
      for (const st of attemptWrites(result)) runSqlite(this.db, st);
    }, result.notices.length > 0);
    if (result.notices.length) this.onEnqueued(result.notices.map((n) => n.id));
  }

  /**
   * Recipients over their warm-up's limit wait until `until` without an
   * attempt (warmup/warmup.ts): `reason` is what the queue shows for them, and
   * the wait is added to their warm-up time, which lengthens their lifetime.
   * Need not survive a power cut: they would be held again.
   */
  async holdForWarmup(
    id: string,
    addresses: readonly string[],
    until: number,
    reason: string,
  ): Promise<void> {
    await this.write(() => {
      const now = Date.now();
      const hold = prepared(
        this.db,
        `UPDATE recipients SET next_attempt = ?, last_reply = ?, warmup_ms = warmup_ms + ?
          WHERE message = ? AND address = ? AND state = 'queued'`,
      );
      for (const a of addresses) hold.run(until, reason, Math.max(0, until - now), id, a);
    }, false);
  }

  /**
   * At start: recipients held by warm-up are due now, so that a changed (or
   * removed) warm-up applies at once; the part of the wait not spent is taken
   * off their warm-up time. Walks the recipients waiting for a later time.
   */
  async releaseWarmupHolds(now = Date.now()): Promise<number> {
    let n = 0;
    await this.write(() => {
      n = Number(
        prepared(
          this.db,
          `UPDATE recipients
              SET warmup_ms = max(0, warmup_ms - (next_attempt - ?)), next_attempt = ?
            WHERE state = 'queued' AND next_attempt > ? AND last_reply LIKE '${WARMUP_HOLD}%'`,
        ).run(now, now, now).changes,
      );
    }, false);
    return n;
  }

  /** Events and suppressions not tied to an attempt (a complaint), in one commit. */
  async recordEvents(w: OutcomeWrites): Promise<void> {
    await this.write(() => {
      for (const st of outcomeStatements(w)) runSqlite(this.db, st);
    });
  }

  /**
   * Store a DMARC or TLS report (reports/store.ts); false for a duplicate.
   * Not synced on its own: the mail it came in is, and a report lost to a
   * power cut is one row of a summary, not a message.
   */
  async recordReport(r: NewReport): Promise<Stored> {
    let stored: Stored = 'duplicate';
    await this.write(() => {
      stored = insertReport(this.db, r);
    }, false);
    return stored;
  }

  /**
   * Replace local recipients by the addresses they forward to, due now, and
   * optionally give the message a new envelope sender (SRS) for them.
   */
  async expand(
    id: string,
    replacements: { address: string; targets: string[] }[],
    sender?: string,
  ): Promise<void> {
    await this.write(() => {
      const now = Date.now();
      const drop = prepared(this.db, 'DELETE FROM recipients WHERE message = ? AND address = ?');
      const add = prepared(
        this.db,
        'INSERT OR IGNORE INTO recipients (message, address, next_attempt) VALUES (?, ?, ?)',
      );
      for (const r of replacements) {
        drop.run(id, r.address);
        for (const t of r.targets) add.run(id, t, now);
      }
      if (sender !== undefined) {
        prepared(this.db, 'UPDATE messages SET sender = ? WHERE id = ?').run(sender, id);
      }
    });
  }

  /**
   * Recipients due now, grouped by message, oldest first, skipping `busy`
   * messages and `fullDomains`; with `scope`, only those of the given domains
   * or messages.
   *
   * Messages in flight and domains at their limit are left out in the query,
   * so that they cannot fill the batch and starve everything behind them. The
   * price: with a large backlog for a domain at its limit, the query walks
   * past all of it (about 0.5 ms per 1,000 recipients). A scoped query goes
   * straight to its domains or messages through an index, whatever the
   * backlog; the scheduler uses it for the work each event can have made
   * startable.
   */
  due(
    now: number,
    limit: number,
    busy: ReadonlySet<string>,
    fullDomains: ReadonlySet<string> = new Set(),
    scope?: { domains: readonly string[] } | { messages: readonly string[] },
  ): DueMessage[] {
    const excluded = () => [JSON.stringify([...busy]), JSON.stringify([...fullDomains])];
    let rows: DueRow[];
    if (scope === undefined) {
      rows = prepared(this.db, dueQuery('')).all(now, ...excluded(), limit) as unknown as DueRow[];
    } else if ('domains' in scope) {
      // One query per domain, each an ordered range of the index
      // (state, domain, next_attempt), stopping at `limit`.
      const one = prepared(this.db, dueQuery('AND r.domain = ?', 'recipients_domain_due'));
      const args = excluded();
      rows = scope.domains
        .flatMap((v) => one.all(now, ...args, v, limit) as unknown as DueRow[])
        .sort((a, b) => a.next_attempt - b.next_attempt || a.message.localeCompare(b.message))
        .slice(0, limit);
    } else {
      // A message's few recipients through the primary key; what is busy or
      // full is left out here, cheaper than the query's JSON lists (a query
      // for every new message, so it shows in the profile)
      const one = prepared(this.db, DUE_OF_MESSAGE);
      rows = scope.messages
        .flatMap((v) => one.all(v, now) as unknown as DueRow[])
        .filter((r) => !busy.has(r.message) && !fullDomains.has(r.domain))
        .sort((a, b) => a.next_attempt - b.next_attempt || a.message.localeCompare(b.message))
        .slice(0, limit);
    }
    return groupDue(rows);
  }

  /** Messages in the queue and the age of the oldest, for metrics. */
  stats(now = Date.now()): { messages: number; oldestSeconds: number } {
    const row = prepared(
      this.db,
      'SELECT count(*) AS n, min(created_at) AS oldest FROM messages',
    ).get() as { n: number; oldest: number | null };
    return { messages: row.n, oldestSeconds: row.oldest ? (now - row.oldest) / 1000 : 0 };
  }

  /** The earliest next attempt of any recipient, or null when the queue is empty. */
  nextDue(): number | null {
    const row = prepared(
      this.db,
      "SELECT min(next_attempt) AS t FROM recipients WHERE state = 'queued'",
    ).get() as { t: number | null };
    return row.t;
  }

  list(): QueuedMessage[] {
    return listMessages(this.db);
  }

  /** A queued message, or null when it is gone (delivered, deleted). */
  message(id: string): StoredMessage | null {
    return storedMessage(this.db, id);
  }

  /** Forget delivery log lines older than `before`. */
  prune(before: number, now = Date.now()): void {
    for (const st of retention(before, now)) runSqlite(this.db, st);
    // not in the PostgreSQL store yet: on it they are still SQLite's
    pruneWebhookLog(this.db, before);
    pruneReports(this.db, before);
  }

  /** Commits what is pending; resolves when its sync is done and the files are closed. */
  async close(): Promise<void> {
    // a running checkpoint first: it may hold the last commit
    await this.checkpoints?.close();
    if (this.pending.length) this.commit();
    // the last sync first: closing the last connection may remove the WAL
    await this.wal.close();
    this.db.close();
  }

  /**
   * The message as rows of PART_SIZE, each its own statement (and commit),
   * read from the file between them into one buffer (no garbage per row:
   * four 45 MB messages at once would otherwise outrun the collector); on an
   * error none stays.
   */
  private async writeParts(
    id: string,
    m: Held,
    body: BodyFile,
  ): Promise<{ parts: number; size: number }> {
    const add = prepared(
      this.db,
      'INSERT INTO message_parts (message, seq, data) VALUES (?, ?, ?)',
    );
    let parts = 0;
    try {
      for await (const part of inParts(m, body, PART_SIZE)) add.run(id, parts++, part);
    } catch (err) {
      try {
        prepared(this.db, 'DELETE FROM message_parts WHERE message = ?').run(id);
      } catch {
        // the sweep at the next start removes them
      }
      throw err;
    }
    return { parts, size: m.head.length + body.size };
  }

  private insert(
    id: string,
    e: Envelope,
    data: Buffer,
    now: number,
    /** Our senders' mail: its record for the events, made before the commit (mailOf()). */
    mail: MailValues | undefined,
    stored = { parts: 0, size: data.length },
  ): void {
    runSqlite(this.db, messageInsert(id, e, now, data, stored));
    for (const st of acceptWrites(id, e, now, mail)) runSqlite(this.db, st);
    const add = prepared(
      this.db,
      'INSERT OR IGNORE INTO recipients (message, address, next_attempt) VALUES (?, ?, ?)',
    );
    for (const r of e.recipients) add.run(id, r, now);
  }

  private walBytes(): number {
    try {
      return statSync(this.walPath).size;
    } catch {
      return 0;
    }
  }

  private write(fn: () => void, durable = true): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ write: fn, durable, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.commit());
      }
    });
  }

  private commit(): void {
    const held = this.checkpoints?.held;
    // still scheduled: what comes meanwhile joins this batch
    if (held)
      return void held.then(
        () => this.commit(),
        () => this.commit(),
      );
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const failed = new Map<Pending, Error>();
    try {
      transaction(this.db, () => {
        for (const p of batch) {
          this.db.exec('SAVEPOINT w');
          try {
            p.write();
            this.db.exec('RELEASE w');
          } catch (err) {
            this.db.exec('ROLLBACK TO w');
            this.db.exec('RELEASE w');
            failed.set(p, err as Error);
          }
        }
      });
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    this.checkpoints?.nudge(this.walBytes());
    const durable: Pending[] = [];
    for (const p of batch) {
      const err = failed.get(p);
      if (err) p.reject(err);
      else if (p.durable) durable.push(p);
      else p.resolve();
    }
    if (durable.length === 0) return;
    this.wal.sync().then(
      () => durable.forEach((p) => p.resolve()),
      (err: Error) => {
        const e = new SyncFailed(err);
        for (const p of durable) p.reject(e);
      },
    );
  }
}

/** A durable write was committed, but the WAL could not be synced (wal-sync.ts). */
export class SyncFailed extends Error {
  constructor(cause: Error) {
    super(
      `the queue could not be synced to disk (${cause.message}); restart posta once the disk is fixed`,
    );
  }
}

/** The queue's messages with their recipients still to deliver, or only the one of `id` (none when it is not queued). */
export function listMessages(db: Db, id?: string): QueuedMessage[] {
  const rows = db
    .prepare(
      `SELECT m.id, m.created_at, m.sender, m.source, m.account, m.client_ip, m.message_id, m.size,
              m.api_key, group_concat(r.address, ' ') AS rcpts
         FROM messages m LEFT JOIN recipients r ON r.message = m.id
        ${id === undefined ? '' : 'WHERE m.id = ?'}
        GROUP BY m.id ORDER BY m.id`,
    )
    .all(...(id === undefined ? [] : [id])) as MessageRow[];
  return rows.map(queuedMessage);
}

/** A row of messages (id, created_at, sender, ...), rcpts the recipients joined by spaces. */
export type MessageRow = Record<string, string | number | null>;

/** A messages row as either engine gives it (PostgreSQL's BIGINT as text). */
export function queuedMessage(r: MessageRow): QueuedMessage {
  return {
    id: String(r.id),
    createdAt: Number(r.created_at),
    sender: String(r.sender),
    source: r.source as Envelope['source'],
    account: r.account === null ? undefined : String(r.account),
    clientIp: String(r.client_ip),
    messageId: r.message_id === null ? undefined : String(r.message_id),
    size: Number(r.size),
    apiKey: r.api_key === null ? undefined : String(r.api_key),
    recipients: r.rcpts ? String(r.rcpts).split(' ') : [],
  };
}

/**
 * A queued message read back: from its row, or its parts one row at a time.
 * The header is in the first part (it is at most [limits] header_size and
 * what posta adds, well under PART_SIZE).
 */
export function storedMessage(db: Db, id: string): StoredMessage | null {
  const row = prepared(db, 'SELECT data, parts, size FROM messages WHERE id = ?').get(id) as
    { data: Uint8Array; parts: number; size: number } | undefined;
  if (!row) return null;
  if (row.parts === 0) {
    const data = Buffer.from(row.data.buffer, row.data.byteOffset, row.data.length);
    return { size: data.length, head: headOf(data), open: () => Readable.from([data]) };
  }
  const part = prepared(db, 'SELECT data FROM message_parts WHERE message = ? AND seq = ?');
  const read = (seq: number): Buffer => {
    const p = part.get(id, seq) as { data: Uint8Array } | undefined;
    if (!p) throw new Error(`part ${seq} of message ${id} is missing (deleted meanwhile?)`);
    return Buffer.from(p.data.buffer, p.data.byteOffset, p.data.length);
  };
  const parts = row.parts;
  return {
    size: row.size,
    head: Buffer.from(headOf(read(0))),
    open: () =>
      Readable.from(
        (function* () {
          for (let seq = 0; seq < parts; seq++) yield read(seq);
        })(),
      ),
  };
}

/** The header section with its empty line (message/held.ts has it so). */
function headOf(data: Buffer): Buffer {
  const block = headerBlock(data);
  return block.length === data.length ? block : data.subarray(0, block.length + 2);
}
