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
 * Rates: the time of each message of the last minute per destination, as
 * the scheduler counts its own (a sliding window: at most perMinute in any
 * minute, across the nodes). One transaction under the destination's
 * advisory lock forgets what is older than a minute, counts the rest and
 * adds this message when there is room, so racing nodes cannot both take
 * the last one. (A token bucket would let through twice the rate in a
 * minute: a burst, then the refill.) The rows are at most perMinute per
 * destination.
 *
 * Both are bookkeeping: committed with synchronous_commit off (a crash of
 * the database loses at most the last moments of it, never mail).
 */
import type pg from 'pg';
import type { SharedLimits, Slot } from '../limits.ts';
import { transaction } from './commit.ts';

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
  CREATE TABLE rate_log (
    destination TEXT NOT NULL,
    at BIGINT NOT NULL
  );
  CREATE INDEX rate_log_destination ON rate_log (destination, at);`;

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

/** The advisory lock of a destination's rate (a hash collision only serializes two of them). */
const RATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('posta rate ' || $1))";
const FORGET_RATE = 'DELETE FROM rate_log WHERE destination = $1 AND at <= $2::bigint - 60000';
const TAKE_RATE = `
  INSERT INTO rate_log (destination, at)
  SELECT $1, $2 WHERE (SELECT count(*) FROM rate_log WHERE destination = $1) < $3
  RETURNING at`;

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
    const r = await transaction(this.pool, false, (c) =>
      c.query(TAKE_SLOT, [destination, limit, this.node, token, this.now()]),
    );
    if (r.rowCount !== 1) return null;
    let released = false;
    return {
      release: async () => {
        if (released) return;
        await transaction(this.pool, false, (c) =>
          c.query('DELETE FROM conn_slots WHERE destination = $1 AND token = $2', [
            destination,
            token,
          ]),
        );
        // only once it is gone: a failed release may be tried again
        released = true;
      },
    };
  }

  async take(destination: string, perMinute: number): Promise<boolean> {
    if (perMinute <= 0) return true;
    const now = this.now();
    const r = await transaction(this.pool, false, async (c) => {
      await c.query(RATE_LOCK, [destination]);
      await c.query(FORGET_RATE, [destination, now]);
      return c.query(TAKE_RATE, [destination, now, perMinute]);
    });
    return r.rowCount === 1;
  }
}
