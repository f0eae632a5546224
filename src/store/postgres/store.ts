/**
 * The queue on PostgreSQL (QueueStore, store/queue-store.ts): any number of
 * posta nodes on one database, each claiming work under leases.
 *
 * Invariants (besides the interface's):
 * - enqueue() and the writes about a claim go through one group commit
 *   (commit.ts); an enqueue, and a record that makes notices (DSNs), commit
 *   with synchronous_commit on; claims, releases, heartbeats, reaps and a
 *   record without notices with it off: lost in a crash, they are as if they
 *   had not happened, which the leases and at-least-once delivery allow.
 * - What goes beside a message or an attempt (events, suppression, counts,
 *   key quotas, unsubscribe links: store/queue-writes.ts) commits in the same
 *   transaction, as on SQLite. (What reads those tables reads SQLite still:
 *   posta does not run on PostgreSQL yet.)
 * - The pool never hangs the process on a database that is down: a
 *   connection that cannot be made in CONNECT_TIMEOUT_MS fails the write,
 *   errors of idle connections are handled, and once the server is back the
 *   next write opens new connections by itself.
 */
import pg from 'pg';
import type { Pool } from 'pg';
import type { Held } from '../../message/held.ts';
import {
  newQueueId,
  queuedMessage,
  type MessageRow,
  type AttemptResult,
  type Envelope,
  type QueuedMessage,
  type StoredMessage,
} from '../../queue/spool.ts';
import type {
  Claim,
  ClaimOptions,
  Lease,
  QueueOverview,
  QueueStore,
  Reaped,
} from '../queue-store.ts';
import { dropParts, storedMessage, sweepParts, writeParts } from './body.ts';
import * as claims from './claims.ts';
import { GroupCommit, transaction } from './commit.ts';
import { migrate } from './schema.ts';
import { NodeLock } from './node-lock.ts';
import { PgLimits } from './limits.ts';
import type { SharedLimits } from '../limits.ts';
import { headerBlock } from '../../message/header.ts';
import { mailOf, outcomeStatements, retention } from '../queue-writes.ts';
import type { OutcomeWrites } from '../../events/outcomes.ts';
import { linkOf, linkQuery, type Link } from '../../unsubscribe/links.ts';
import { lead } from './leader.ts';
import { runPg } from '../statement.ts';
import {
  pairKey,
  suppressedAmong,
  type SendingPair,
  type SuppressionList,
} from '../../suppression/suppression.ts';
import { pgSuppressions } from './suppressions.ts';
import { outcomeCounts } from '../../queue/inspect.ts';

/** How long a new connection may take before the write that wanted it fails. */
const CONNECT_TIMEOUT_MS = 5_000;
/** How long one query may take, on the server (statement_timeout) and here. */
const QUERY_TIMEOUT_MS = 60_000;
/** How long a start waits for its node's name (a killed process's session to end). */
const LOCK_WAIT_MS = 30_000;
/** How long the node that did retention keeps the duty (it runs hourly). */
const RETENTION_LEASE_MS = 2 * 60 * 60 * 1000;
/** Parts without a message older than this are a crash's leftovers (no write takes so long). */
const ORPHAN_PARTS_MS = 24 * 60 * 60 * 1000;

export interface PgOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /**
   * This node's name, in its leases and heartbeats: one running process per
   * name (at open, what the name held before is given back).
   */
  node: string;
  /** Connections in the pool. */
  max?: number;
  /** Errors of idle connections (the server went away); the next write reports its own. */
  onError?: (err: Error) => void;
  /** How long a start waits for an earlier process of this node's name to go away (node-lock.ts). */
  lockWaitMs?: number;
}

export class PgQueueStore implements QueueStore {
  readonly engine = 'postgres' as const;
  readonly node: string;
  private readonly pool: Pool;
  private readonly group: GroupCommit;
  private readonly lock: NodeLock;
  onEnqueued: (ids: string[]) => void = () => {};
  readonly suppressions: SuppressionList;

  private constructor(pool: Pool, node: string, lock: NodeLock) {
    this.pool = pool;
    this.node = node;
    this.lock = lock;
    this.group = new GroupCommit(pool);
    this.suppressions = pgSuppressions(pool);
  }

  /**
   * Connects, takes the node's name (node-lock.ts), brings the schema up to
   * date, removes old orphan parts and says this node is alive.
   */
  static async open(o: PgOptions): Promise<PgQueueStore> {
    const lock = await NodeLock.take({
      url: o.url,
      node: o.node,
      waitMs: o.lockWaitMs ?? LOCK_WAIT_MS,
      onError: (err) => o.onError?.(err),
    });
    const pool = new pg.Pool({
      connectionString: o.url,
      // pg_stat_activity shows which node a session is
      application_name: `posta ${o.node}`,
      max: o.max ?? 10,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // a database that hangs fails the query rather than the node's rounds
      query_timeout: QUERY_TIMEOUT_MS,
      statement_timeout: QUERY_TIMEOUT_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
    });
    pool.on('error', (err) => o.onError?.(err));
    // A connection checked out between two queries (a batch's transaction)
    // that the server drops emits 'error' with no query to reject: without a
    // listener, that would end the process. Its next query fails instead.
    pool.on('connect', (client) => client.on('error', (err) => o.onError?.(err)));
    try {
      const c = await pool.connect();
      try {
        await migrate(c);
      } finally {
        c.release();
      }
      await sweepParts(pool, ORPHAN_PARTS_MS);
      // what an earlier process of this name held (it was killed): nobody
      // else reaps a node that is alive again under its name
      await transaction(pool, false, (c) => claims.releaseNode(c, o.node));
      const store = new PgQueueStore(pool, o.node, lock);
      await store.heartbeat();
      return store;
    } catch (err) {
      await pool.end().catch(() => {});
      await lock.close();
      throw err;
    }
  }

  async enqueue(envelope: Envelope, data: Buffer | Held, id = newQueueId()): Promise<string> {
    const now = Date.now();
    const mail = mailOf(id, envelope, Buffer.isBuffer(data) ? headerBlock(data) : data.head);
    if (Buffer.isBuffer(data)) {
      await this.group.write(
        (c, defer) => claims.insertMessage(c, id, envelope, data, now, mail, undefined, defer),
        true,
      );
    } else if (Buffer.isBuffer(data.body)) {
      const whole = Buffer.concat([data.head, data.body]);
      await this.group.write(
        (c, defer) => claims.insertMessage(c, id, envelope, whole, now, mail, undefined, defer),
        true,
      );
    } else {
      const stored = await writeParts(this.pool, id, data, data.body);
      try {
        await this.group.write(async (c, defer) => {
          // the row commits only with every part beside it, or not at all
          const { rows } = await c.query<{ n: string }>(
            'SELECT count(*) AS n FROM message_parts WHERE message = $1',
            [id],
          );
          if (Number(rows[0]?.n) !== stored.parts) {
            throw new Error(`message ${id} lost parts before its commit`);
          }
          await claims.insertMessage(c, id, envelope, Buffer.alloc(0), now, mail, stored, defer);
        }, true);
      } catch (err) {
        await dropParts(this.pool, id).catch(() => {});
        throw err;
      }
    }
    this.onEnqueued([id]);
    return id;
  }

  /** Connection slots and rates shared with the other nodes on this database (limits.ts). */
  limits(): SharedLimits {
    return new PgLimits(this.pool, this.node);
  }

  /** Transactions the group commit has committed (for metrics: messages per commit). */
  get commits(): number {
    return this.group.committed;
  }

  claim(o: ClaimOptions): Promise<Claim[]> {
    return transaction(this.pool, false, (c) => claims.claim(c, this.node, o));
  }

  async record(claim: Lease, result: AttemptResult): Promise<boolean> {
    const ok = await this.group.write(
      (c, defer) => claims.record(c, claim, result, defer),
      result.notices.length > 0,
    );
    if (ok && result.notices.length) this.onEnqueued(result.notices.map((n) => n.id));
    return ok;
  }

  hold(
    claim: Lease,
    addresses: readonly string[],
    until: number,
    reason: string,
  ): Promise<boolean> {
    return this.group.write((c) => claims.hold(c, claim, addresses, until, reason), false);
  }

  release(claim: Lease): Promise<boolean> {
    return this.group.write((c) => claims.release(c, claim), false);
  }

  expand(
    claim: Lease,
    replacements: { address: string; targets: string[] }[],
    sender?: string,
  ): Promise<boolean> {
    return this.group.write((c) => claims.expand(c, this.node, claim, replacements, sender), true);
  }

  async suppressed(among: readonly SendingPair[]): Promise<Set<string>> {
    if (among.length === 0) return new Set();
    const q = suppressedAmong(among);
    const { rows } = await runPg<SendingPair>(this.pool, q);
    return new Set(rows.map(pairKey));
  }

  async unsubscribeLink(token: string): Promise<Link | undefined> {
    return linkOf((await runPg<Link>(this.pool, linkQuery(token))).rows[0]);
  }

  async mailTags(message: string): Promise<Record<string, string[]>> {
    const { rows } = await this.pool.query<{ tags: string }>(
      'SELECT tags FROM mail_log WHERE message = $1',
      [message],
    );
    return rows[0] ? (JSON.parse(rows[0].tags) as Record<string, string[]>) : {};
  }

  recordEvents(w: OutcomeWrites): Promise<void> {
    return transaction(this.pool, true, async (c) => {
      for (const st of outcomeStatements(w)) await runPg(c, st);
    });
  }

  message(id: string): Promise<StoredMessage | null> {
    return storedMessage(this.pool, id);
  }

  async list(): Promise<QueuedMessage[]> {
    const { rows } = await this.pool.query<MessageRow>(
      `SELECT m.id, m.created_at, m.sender, m.source, m.account, m.client_ip, m.message_id, m.size,
              m.api_key, string_agg(r.address, ' ' ORDER BY r.address) AS rcpts
         FROM messages m LEFT JOIN recipients r ON r.message = m.id
        GROUP BY m.id ORDER BY m.id`,
    );
    return rows.map(queuedMessage);
  }

  async stats(now = Date.now()): Promise<{ messages: number; oldestSeconds: number }> {
    const { rows } = await this.pool.query<{ n: string; oldest: string | null }>(
      'SELECT count(*) AS n, min(created_at) AS oldest FROM messages',
    );
    const row = rows[0];
    const oldest = row?.oldest ? Number(row.oldest) : 0;
    return { messages: Number(row?.n ?? 0), oldestSeconds: oldest ? (now - oldest) / 1000 : 0 };
  }

  async overview(now = Date.now()): Promise<QueueOverview> {
    const [{ messages, oldestSeconds }, r, a] = await Promise.all([
      this.stats(now),
      this.pool.query<{ queued: string; deferred: string }>(
        `SELECT count(*) FILTER (WHERE attempts = 0) AS queued,
                count(*) FILTER (WHERE attempts > 0) AS deferred
           FROM recipients WHERE state = 'queued'`,
      ),
      this.pool.query<{ outcome: string; hour: string; day: string }>(
        `SELECT outcome, count(*) FILTER (WHERE at >= $1) AS hour, count(*) AS day
           FROM attempts WHERE at >= $2 GROUP BY outcome`,
        [now - 3600_000, now - 86400_000],
      ),
    ]);
    return {
      messages,
      queued: Number(r.rows[0]?.queued ?? 0),
      deferred: Number(r.rows[0]?.deferred ?? 0),
      oldestSeconds: Math.round(oldestSeconds),
      lastHour: outcomeCounts(a.rows.map((x) => ({ outcome: x.outcome, n: x.hour }))),
      lastDay: outcomeCounts(a.rows.map((x) => ({ outcome: x.outcome, n: x.day }))),
    };
  }

  /** Of the recipients no node holds: another node's claim is not due work for this one. */
  async nextDue(): Promise<number | null> {
    const { rows } = await this.pool.query<{ t: string | null }>(
      "SELECT min(next_attempt) AS t FROM recipients WHERE state = 'queued' AND lease IS NULL",
    );
    const t = rows[0]?.t;
    return t === null || t === undefined ? null : Number(t);
  }

  async prune(before: number, now = Date.now()): Promise<void> {
    // held for a day: retention runs hourly on every node, and this one keeps it
    if (!(await lead(this.pool, 'retention', this.node, RETENTION_LEASE_MS, now))) return;
    await transaction(this.pool, false, async (c) => {
      for (const st of retention(before, now)) await runPg(c, st);
    });
  }

  heartbeat(now = Date.now()): Promise<void> {
    return transaction(this.pool, false, (c) => claims.heartbeat(c, this.node, now));
  }

  reap(leaseMs: number, now = Date.now()): Promise<Reaped> {
    return transaction(this.pool, false, (c) => claims.reap(c, this.node, leaseMs, now));
  }

  /** Commits what is pending, ends this node's claims (their recipients are due as they were), closes the pool. */
  async close(): Promise<void> {
    await this.group.drain();
    // a database that is down keeps them until another node reaps them
    await transaction(this.pool, false, (c) => claims.releaseNode(c, this.node)).catch(() => {});
    await this.pool.end();
    await this.lock.close();
  }
}
