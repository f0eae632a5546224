/**
 * The delivery limits of store/limits.ts on PostgreSQL, shared by every node
 * on the database (the KumoMTA model: leases for connections, a rate row per
 * destination; no other service).
 *
 * Connection slots: a destination limited to N has slots numbered 0..N-1,
 * each at most one row of conn_slots (its primary key). slot() inserts the
 * first free number below N in one statement, so two nodes racing for the
 * last slot cannot both get it (one insert conflicts and takes nothing).
 * Each row names its node: the reaper removes the slots of a node whose
 * heartbeat stopped, as it returns that node's claims (claims.ts reap).
 *
 * Rates: GCRA (the generic cell rate algorithm) per destination: `tat`, the
 * theoretical arrival time, moves on by 60 s / perMinute per message, and a
 * message is allowed while tat stays within a minute of now, so at most
 * perMinute go in a burst and then one per interval. One upsert on the
 * destination's row decides and counts, under its row lock.
 *
 * Both are bookkeeping: committed with synchronous_commit off (a crash of
 * the database loses at most the last moments of it, never mail).
 */
import type pg from 'pg';
import type { SharedLimits, Slot } from '../limits.ts';

/** The tables, as a PostgreSQL migration. */
export const LIMITS_SCHEMA = `
  CREATE TABLE conn_slots (
    destination TEXT NOT NULL,
    slot INTEGER NOT NULL,
    node TEXT NOT NULL,
    token TEXT NOT NULL,
    taken_at BIGINT NOT NULL,
    PRIMARY KEY (destination, slot)
  );
  CREATE INDEX conn_slots_node ON conn_slots (node);
  CREATE TABLE rate_limits (
    destination TEXT PRIMARY KEY,
    tat BIGINT NOT NULL
  );`;

const MINUTE = 60_000;

const TAKE_SLOT = `
  WITH free AS (
    SELECT s FROM generate_series(0, $2::int - 1) AS s
     WHERE NOT EXISTS (SELECT 1 FROM conn_slots c WHERE c.destination = $1 AND c.slot = s)
     ORDER BY s LIMIT 1
  )
  INSERT INTO conn_slots (destination, slot, node, token, taken_at)
  SELECT $1, s, $3, $4, $5 FROM free
  ON CONFLICT DO NOTHING
  RETURNING slot`;

const TAKE_RATE = `
  INSERT INTO rate_limits (destination, tat) VALUES ($1, $2::bigint + $3::bigint)
  ON CONFLICT (destination) DO UPDATE
     SET tat = greatest(rate_limits.tat, $2::bigint) + $3::bigint
   WHERE greatest(rate_limits.tat, $2::bigint) + $3::bigint - $2::bigint <= ${MINUTE}
  RETURNING tat`;

export class PgLimits implements SharedLimits {
  private readonly pool: pg.Pool;
  private readonly node: string;
  private readonly now: () => number;

  constructor(pool: pg.Pool, node: string, now: () => number = Date.now) {
    this.pool = pool;
    this.node = node;
    this.now = now;
  }

  async slot(destination: string, limit: number): Promise<Slot | null> {
    const token = crypto.randomUUID();
    const r = await this.bookkeeping(TAKE_SLOT, [destination, limit, this.node, token, this.now()]);
    if (r.rowCount === 0) return null;
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        await this.bookkeeping('DELETE FROM conn_slots WHERE destination = $1 AND token = $2', [
          destination,
          token,
        ]);
      },
    };
  }

  async take(destination: string, perMinute: number): Promise<boolean> {
    if (perMinute <= 0) return true;
    const interval = Math.ceil(MINUTE / perMinute);
    const r = await this.bookkeeping(TAKE_RATE, [destination, this.now(), interval]);
    return r.rowCount === 1;
  }

  /** One statement in its own transaction, not waiting for the WAL's flush. */
  private async bookkeeping(sql: string, args: unknown[]): Promise<pg.QueryResult> {
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL synchronous_commit TO OFF');
      const r = await c.query(sql, args);
      await c.query('COMMIT');
      return r;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.release();
    }
  }
}
