/**
 * Group commit on PostgreSQL: the writes queued in one turn of the event loop
 * (and those that arrive while a commit is in flight) run in one transaction
 * on one connection, one COMMIT for all, each write in its own savepoint so
 * that one failing write does not take the others down (as the spool's
 * commit does, queue/spool.ts).
 *
 * Invariants:
 * - A write's promise settles only after its COMMIT returned; a durable
 *   write's COMMIT runs with synchronous_commit = on (the server's default,
 *   asserted per transaction), so it is flushed to the WAL on disk first.
 * - A batch with no durable write commits with SET LOCAL synchronous_commit
 *   TO OFF: bookkeeping that may be lost in a crash (the database state is
 *   then as if it had rolled back cleanly) waits for no flush.
 * - One batch at a time: commits are in order, and the next batch is all
 *   that queued meanwhile.
 * - A batch whose connection or COMMIT fails rejects every write in it; a
 *   broken connection is destroyed, not given back to the pool.
 * - Counter increments run last, sorted by statement and arguments: the
 *   rows every batch bumps (a minute's counts) are locked at the end and in
 *   one order, which is what kept three nodes' batches deadlocking on them.
 * - A write the server cancelled to break a deadlock (40P01) or a
 *   serialization failure (40001), which happen when nodes' batches bump the
 *   same counter rows (stats, key quotas) in other orders, is undone by its
 *   savepoint and queued again for the next batch, which runs after this
 *   one's locks are gone; only after RETRIES such tries does it fail.
 */
import type { Pool, PoolClient } from 'pg';
import { runPg, type Statement } from '../statement.ts';

/**
 * One write of a batch: runs its statements on the batch's connection, inside
 * its savepoint, and hands its counter increments (Statement.counter) to
 * `defer`: they run after every write of the batch, sorted, so that all
 * nodes lock shared counter rows in one order.
 */
export type Write<T> = (c: PoolClient, defer: (st: Statement) => void) => Promise<T>;

/** Tries of a write cancelled by a deadlock or serialization failure before it fails. */
const RETRIES = 5;
const RETRYABLE = new Set(['40P01', '40001']);

interface Pending {
  write: Write<unknown>;
  durable: boolean;
  /** Deadlocks it lost so far. */
  lost: number;
  resolve: (v: unknown) => void;
  reject: (err: Error) => void;
}

export class GroupCommit {
  private pending: Pending[] = [];
  private running: Promise<void> | null = null;
  private scheduled = false;
  private readonly pool: Pool;
  /** Transactions committed so far (a batch each). */
  committed = 0;

  constructor(pool: Pool) {
    this.pool = pool;
  }

  /** Queues a write; resolves with its value once its batch committed. */
  write<T>(write: Write<T>, durable: boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.pending.push({
        write,
        durable,
        lost: 0,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      this.schedule();
    });
  }

  /** Resolves when everything queued so far has been committed (or failed). */
  async drain(): Promise<void> {
    while (this.pending.length || this.running || this.scheduled) {
      if (this.running) await this.running;
      else await new Promise((r) => setImmediate(r));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const batch = this.pending;
      this.pending = [];
      if (batch.length === 0) return;
      this.running = this.commit(batch).finally(() => {
        this.running = null;
        if (this.pending.length) this.schedule();
      });
    });
  }

  private async commit(batch: Pending[]): Promise<void> {
    let c: PoolClient;
    try {
      c = await this.begin();
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    const done = new Map<Pending, unknown>();
    const failed = new Map<Pending, Error>();
    const again: Pending[] = [];
    const counters: Statement[] = [];
    try {
      if (!batch.some((p) => p.durable)) await c.query('SET LOCAL synchronous_commit TO OFF');
      else await c.query('SET LOCAL synchronous_commit TO ON');
      for (const p of batch) {
        await c.query('SAVEPOINT w');
        const mine: Statement[] = [];
        try {
          done.set(p, await p.write(c, (st) => mine.push(st)));
          await c.query('RELEASE SAVEPOINT w');
          counters.push(...mine);
        } catch (err) {
          // a broken connection fails here too, and so the whole batch
          await c.query('ROLLBACK TO SAVEPOINT w');
          await c.query('RELEASE SAVEPOINT w');
          const code = (err as { code?: string }).code;
          if (code && RETRYABLE.has(code) && ++p.lost < RETRIES) again.push(p);
          else failed.set(p, err as Error);
        }
      }
      const order = (st: Statement) => `${st.sql}\u0000${JSON.stringify(st.args)}`;
      counters.sort((x, y) => (order(x) < order(y) ? -1 : order(x) > order(y) ? 1 : 0));
      for (const st of counters) await runPg(c, st);
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      c.release(err as Error);
      for (const p of batch) p.reject(err as Error);
      return;
    }
    this.committed++;
    c.release();
    const retried = new Set(again);
    for (const p of batch) {
      if (retried.has(p)) continue;
      const err = failed.get(p);
      if (err) p.reject(err);
      else p.resolve(done.get(p));
    }
    // first in the next batch (schedule() runs it once this one is over)
    if (again.length) this.pending.unshift(...again);
  }

  /**
   * A connection in a transaction. A BEGIN that fails on a connection the
   * pool still held but the server had closed (it restarted) is tried once
   * more on a new one: nothing was sent yet.
   */
  private async begin(): Promise<PoolClient> {
    for (let tries = 0; ; tries++) {
      const c = await this.pool.connect();
      try {
        await c.query('BEGIN');
        return c;
      } catch (err) {
        c.release(err as Error);
        if (tries > 0) throw err;
      }
    }
  }
}

/** Runs `fn` in a transaction of its own on a pool connection; `durable` false: synchronous_commit off. */
export async function transaction<T>(
  pool: Pool,
  durable: boolean,
  fn: (c: PoolClient) => Promise<T>,
): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    if (!durable) await c.query('SET LOCAL synchronous_commit TO OFF');
    const v = await fn(c);
    await c.query('COMMIT');
    c.release();
    return v;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    c.release(err as Error);
    throw err;
  }
}
