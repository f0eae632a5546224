/**
 * Claims on PostgreSQL: which node works on which recipient, and the fence
 * on every write about a claim.
 *
 * Invariants:
 * - claim() takes due, unleased recipients with FOR UPDATE SKIP LOCKED, in
 *   one statement that also leases them, so two nodes claiming at once never
 *   get the same recipient: the second skips the rows the first holds, and a
 *   row leased meanwhile fails the `lease IS NULL` recheck.
 * - A message is claimed by one claim at a time (the spool's "busy"): the
 *   claim locks the message row too and sets messages.lease, so a node whose
 *   snapshot predates another's claim fails the `m.lease IS NULL` recheck
 *   when it locks the row the other updated.
 * - One lease token per claimed message (gen_random_uuid()); the writes
 *   about a claim (record, hold, release, expand) lock the rows carrying it
 *   first, and write nothing when a recipient they name no longer carries
 *   it: the claim was reaped and may be another node's now. A record leaves
 *   the claim on (a message's domains are recorded one by one); release()
 *   ends it.
 * - reap() gives back the recipients of nodes whose heartbeat is older than
 *   the lease (or that have none), due at once and marked maybe_sent, and
 *   the connection slots they held (limits.ts).
 */
import type { PoolClient } from 'pg';
import type { Claim, ClaimOptions, Lease, Reaped } from '../queue-store.ts';
import { groupDue, type AttemptResult, type Envelope } from '../../queue/spool.ts';
import type { MailValues } from '../../events/events.ts';
import { acceptWrites, attemptInsert, attemptWrites, messageInsert } from '../queue-writes.ts';
import { runPg, type Statement } from '../statement.ts';

interface ClaimRow {
  message: string;
  address: string;
  attempts: number;
  next_attempt: string;
  warmup_ms: string;
  lease: string;
  created_at: string;
  sender: string;
  source: string;
  warned: boolean;
  smtputf8: boolean;
  sender_auth: string | null;
}

/** Due recipients leased to `node`, grouped by message, oldest first. */
export async function claim(c: PoolClient, node: string, o: ClaimOptions): Promise<Claim[]> {
  const args: unknown[] = [o.now, [...(o.skip ?? [])], [...(o.fullDomains ?? [])], o.limit, node];
  let scope = '';
  if (o.scope && 'domains' in o.scope) {
    scope = 'AND r.domain = ANY($6::text[])';
    args.push([...o.scope.domains]);
  } else if (o.scope) {
    scope = 'AND r.message = ANY($6::text[])';
    args.push([...o.scope.messages]);
  }
  const { rows } = await c.query<ClaimRow>(
    `WITH due AS MATERIALIZED (
       SELECT r.message, r.address
         FROM recipients r JOIN messages m ON m.id = r.message
        WHERE r.state = 'queued' AND r.lease IS NULL AND r.next_attempt <= $1 AND m.lease IS NULL
          AND r.message <> ALL($2::text[]) AND r.domain <> ALL($3::text[])
          ${scope}
        ORDER BY r.next_attempt, r.message
        LIMIT $4
        FOR UPDATE OF r, m SKIP LOCKED
     ), leases AS MATERIALIZED (
       SELECT d.message, gen_random_uuid()::text AS lease FROM (SELECT DISTINCT message FROM due) d
     ), held AS (
       UPDATE messages m SET lease = l.lease, owner = $5 FROM leases l WHERE m.id = l.message
       RETURNING m.id, m.created_at, m.sender, m.source, m.warned, m.smtputf8, m.sender_auth
     )
     UPDATE recipients r
        SET owner = $5, lease = l.lease, leased_at = $1
       FROM due, leases l, held m
      WHERE r.message = due.message AND r.address = due.address
        AND l.message = due.message AND m.id = r.message
     RETURNING r.message, r.address, r.attempts, r.next_attempt, r.warmup_ms, r.lease,
               m.created_at, m.sender, m.source, m.warned, m.smtputf8, m.sender_auth`,
    args,
  );
  rows.sort(
    (a, b) =>
      Number(a.next_attempt) - Number(b.next_attempt) ||
      (a.message < b.message ? -1 : a.message > b.message ? 1 : 0),
  );
  const leases = new Map(rows.map((r) => [r.message, r.lease]));
  return groupDue(rows).map((m) => ({ ...m, lease: leases.get(m.id) ?? '' }));
}

/**
 * The recipients still carrying the claim's token, locked until the
 * transaction ends (so a reap waits for this write, or this write sees the
 * reap); null when the claim is gone or does not cover all of `addresses`.
 */
async function fence(
  c: PoolClient,
  l: Lease,
  addresses: readonly string[],
): Promise<Set<string> | null> {
  // locks in one order, recipients then their message, in every write (reap too)
  const { rows } = await c.query<{ address: string }>(
    'SELECT address FROM recipients WHERE message = $1 AND lease = $2 FOR UPDATE',
    [l.id, l.lease],
  );
  const m = await c.query('SELECT 1 FROM messages WHERE id = $1 AND lease = $2 FOR UPDATE', [
    l.id,
    l.lease,
  ]);
  if (m.rowCount === 0) return null;
  const held = new Set(rows.map((r) => r.address));
  if (held.size === 0 || addresses.some((a) => !held.has(a))) return null;
  return held;
}

/** The claim ends: its remaining recipients are free (due as their next_attempt says). */
async function endClaim(c: PoolClient, l: Lease): Promise<number> {
  const r = await c.query(
    'UPDATE recipients SET owner = NULL, lease = NULL, leased_at = NULL WHERE message = $1 AND lease = $2',
    [l.id, l.lease],
  );
  await c.query('UPDATE messages SET lease = NULL, owner = NULL WHERE id = $1 AND lease = $2', [
    l.id,
    l.lease,
  ]);
  return r.rowCount ?? 0;
}

/** A new message and its recipients (due `now`), in the caller's transaction. */
export async function insertMessage(
  c: PoolClient,
  id: string,
  e: Envelope,
  data: Buffer,
  now: number,
  /** Our senders' mail: its record for the events (queue-writes.ts mailOf()). */
  mail: MailValues | undefined,
  stored = { parts: 0, size: data.length },
  /** Takes the counter increments, for the batch to run last (commit.ts); else they run here. */
  defer?: (st: Statement) => void,
): Promise<void> {
  const row = messageInsert(id, e, now, data, stored);
  await runPg(c, row);
  await c.query(
    `INSERT INTO recipients (message, address, next_attempt)
     SELECT $1, a, $3 FROM unnest($2::text[]) AS a ON CONFLICT DO NOTHING`,
    [id, e.recipients, now],
  );
  await runAll(c, acceptWrites(id, e, now, mail), defer);
}

/** Runs `sts` on `c`, but hands the counter increments to `defer` when there is one. */
async function runAll(
  c: PoolClient,
  sts: Statement[],
  defer: ((st: Statement) => void) | undefined,
): Promise<void> {
  for (const st of sts) {
    if (st.counter && defer) defer(st);
    else await runPg(c, st);
  }
}

/**
 * An attempt's results (see QueueStore.record), with what goes beside them
 * (queue-writes.ts); the claim goes on. False, with nothing written, when
 * fenced off.
 */
export async function record(
  c: PoolClient,
  l: Lease,
  result: AttemptResult,
  defer?: (st: Statement) => void,
): Promise<boolean> {
  if (
    !(await fence(
      c,
      l,
      result.attempts.map((a) => a.recipient),
    ))
  )
    return false;
  for (const a of result.attempts) {
    const line = attemptInsert(l.id, a);
    await runPg(c, line);
    const next = result.retry.get(a.recipient);
    if (next === undefined) {
      await c.query('DELETE FROM recipients WHERE message = $1 AND address = $2', [
        l.id,
        a.recipient,
      ]);
    } else {
      await c.query(
        `UPDATE recipients SET attempts = attempts + 1, next_attempt = $1, last_reply = $2
          WHERE message = $3 AND address = $4`,
        [next, a.reply, l.id, a.recipient],
      );
    }
  }
  if (result.warned) await c.query('UPDATE messages SET warned = true WHERE id = $1', [l.id]);
  await c.query(
    'DELETE FROM messages WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM recipients WHERE message = $1)',
    [l.id],
  );
  for (const n of result.notices) {
    await insertMessage(c, n.id, n.envelope, n.data, Date.now(), undefined, undefined, defer);
  }
  await runAll(c, attemptWrites(result), defer);
  return true;
}

/**
 * Recipients of the claim wait for warm-up until `until`, untried (see
 * QueueStore.hold); false, with nothing written, when fenced off.
 */
export async function hold(
  c: PoolClient,
  l: Lease,
  addresses: readonly string[],
  until: number,
  reason: string,
): Promise<boolean> {
  if (!(await fence(c, l, addresses))) return false;
  await c.query(
    `UPDATE recipients SET next_attempt = $1, last_reply = $2, warmup_ms = warmup_ms + $3
      WHERE message = $4 AND address = ANY($5::text[]) AND state = 'queued'`,
    [until, reason, Math.max(0, until - Date.now()), l.id, [...addresses]],
  );
  return true;
}

/** Ends a claim without an attempt; false when no recipient carries its token any more. */
export async function release(c: PoolClient, l: Lease): Promise<boolean> {
  return (await endClaim(c, l)) > 0;
}

/**
 * Local recipients become their forwarding targets, due now and part of the
 * same claim (they are free when it ends); false, with nothing written, when
 * fenced off.
 */
export async function expand(
  c: PoolClient,
  node: string,
  l: Lease,
  replacements: { address: string; targets: string[] }[],
  sender: string | undefined,
): Promise<boolean> {
  if (
    !(await fence(
      c,
      l,
      replacements.map((r) => r.address),
    ))
  )
    return false;
  const now = Date.now();
  for (const r of replacements) {
    await c.query('DELETE FROM recipients WHERE message = $1 AND address = $2', [l.id, r.address]);
    await c.query(
      `INSERT INTO recipients (message, address, next_attempt, owner, lease, leased_at)
       SELECT $1, a, $3, $4, $5, $3 FROM unnest($2::text[]) AS a ON CONFLICT DO NOTHING`,
      [l.id, r.targets, now, node, l.lease],
    );
  }
  if (sender !== undefined) {
    await c.query('UPDATE messages SET sender = $1 WHERE id = $2', [sender, l.id]);
  }
  return true;
}

/** Every claim of `node` ends, and its connection slots (it closes, or starts again under its name). */
export async function releaseNode(c: PoolClient, node: string): Promise<void> {
  await c.query(
    `WITH mine AS (
       SELECT message, address, lease FROM recipients WHERE owner = $1 FOR UPDATE
     ), freed AS (
       UPDATE messages SET lease = NULL WHERE lease IN (SELECT lease FROM mine)
     )
     UPDATE recipients r SET owner = NULL, lease = NULL, leased_at = NULL
       FROM mine WHERE r.message = mine.message AND r.address = mine.address`,
    [node],
  );
  // a claim whose claimed recipients were all recorded holds its message by this alone
  await c.query('UPDATE messages SET lease = NULL, owner = NULL WHERE owner = $1', [node]);
  await c.query('DELETE FROM conn_slots WHERE node = $1', [node]);
}

/** This node is alive at `now`. */
export async function heartbeat(c: PoolClient, node: string, now: number): Promise<void> {
  await c.query(
    `INSERT INTO nodes (id, heartbeat_at) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = greatest(nodes.heartbeat_at, excluded.heartbeat_at)`,
    [node, now],
  );
}

/** Gives back the work of other nodes silent for longer than `leaseMs` (or never heard of). */
export async function reap(
  c: PoolClient,
  node: string,
  leaseMs: number,
  now: number,
): Promise<Reaped> {
  // the old owner comes from the CTE: RETURNING sees the row after the update
  const { rows } = await c.query<{ owner: string }>(
    `WITH stale AS (
       SELECT message, address, owner, lease FROM recipients
        WHERE owner IS NOT NULL AND owner <> $3
          AND owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1::bigint - $2::bigint)
        FOR UPDATE
     ), freed AS (
       UPDATE messages SET lease = NULL WHERE lease IN (SELECT lease FROM stale)
     )
     UPDATE recipients r
        SET owner = NULL, lease = NULL, leased_at = NULL, next_attempt = $1, maybe_sent = true
       FROM stale s
      WHERE r.message = s.message AND r.address = s.address
     RETURNING s.owner`,
    [now, leaseMs, node],
  );
  // their messages, also those whose claimed recipients were all recorded
  // (no recipient carries the lease then), and the connection slots they
  // held (limits.ts)
  await c.query(
    `UPDATE messages SET lease = NULL, owner = NULL
      WHERE owner IS NOT NULL AND owner <> $3
        AND owner NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1::bigint - $2::bigint)`,
    [now, leaseMs, node],
  );
  await c.query(
    `DELETE FROM conn_slots
      WHERE node <> $3 AND node NOT IN (SELECT id FROM nodes WHERE heartbeat_at >= $1::bigint - $2::bigint)`,
    [now, leaseMs, node],
  );
  return { recipients: rows.length, nodes: [...new Set(rows.map((r) => r.owner))].sort() };
}
