/**
 * Cluster duties that one node does for all (retention now; ACME renewals and
 * periodic checks are to follow): a lease per duty in table `leaders`, taken
 * by the first node to ask once the holder's lease has run out, and kept by
 * its holder as long as it asks again in time.
 *
 * Invariants:
 * - At most one node holds a duty's unexpired lease: the upsert's WHERE lets
 *   the holder renew and anyone take an expired lease, in one statement that
 *   the row lock serializes.
 * - A duty's work is idempotent (deleting what is old), so a holder that froze
 *   past its lease and wakes up while another node holds it does no harm.
 */
import type { Pool } from 'pg';

export const LEADERS_SCHEMA = `
  CREATE TABLE leaders (
    duty TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    until_at BIGINT NOT NULL
  );`;

/** True when `node` holds (took or renewed) the lease of `duty` until now + ttlMs. */
export async function lead(
  pool: Pool,
  duty: string,
  node: string,
  ttlMs: number,
  now = Date.now(),
): Promise<boolean> {
  const { rows } = await pool.query(
    `INSERT INTO leaders (duty, node, until_at) VALUES ($1, $2, $3)
     ON CONFLICT (duty) DO UPDATE SET node = excluded.node, until_at = excluded.until_at
      WHERE leaders.node = excluded.node OR leaders.until_at < $4
     RETURNING node`,
    [duty, node, now + ttlMs, now],
  );
  return rows.length === 1;
}

/** Who holds each duty's lease, and until when (for `posta status`). */
export async function leaders(
  pool: Pool,
): Promise<{ duty: string; node: string; until: number }[]> {
  const { rows } = await pool.query<{ duty: string; node: string; until_at: string }>(
    'SELECT duty, node, until_at FROM leaders ORDER BY duty',
  );
  return rows.map((r) => ({ duty: r.duty, node: r.node, until: Number(r.until_at) }));
}
