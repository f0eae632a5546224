/**
 * The PostgreSQL queue's schema: numbered migrations, append-only like
 * queue/spool.ts's MIGRATIONS (never edit one that shipped; add the next),
 * recorded in `posta_migrations` (version, applied_at).
 *
 * Columns mean what they mean in the SQLite schema (times in milliseconds
 * since the epoch as bigint, the domain what follows the last "@",
 * lower-cased); what is new is the claim: a recipient's `owner` (the node
 * that holds it), `lease` (one token per claimed message), `leased_at`, and
 * `maybe_sent` (it was taken back from a node that stopped, which may have
 * sent it); and a message's `lease`, the token of the claim that holds it,
 * on which a concurrent claim's recheck of the row fails. Flags SQLite keeps as 0/1 are booleans here.
 *
 * Invariant: migrate() runs the missing migrations in one transaction under
 * an advisory lock, so two nodes starting at once on an empty database do
 * not race: the second waits, then finds them applied.
 */
import type { PoolClient } from 'pg';

/** pg_advisory_xact_lock key of the migrations ("posta" in ASCII). */
const MIGRATION_LOCK = 0x706f737461;

export const MIGRATIONS = [
  `CREATE TABLE messages (
     id text PRIMARY KEY,
     created_at bigint NOT NULL,
     sender text NOT NULL,
     source text NOT NULL,
     account text,
     client_ip text NOT NULL,
     message_id text,
     size bigint NOT NULL,
     data bytea NOT NULL,
     warned boolean NOT NULL DEFAULT false,
     smtputf8 boolean NOT NULL DEFAULT false,
     parts integer NOT NULL DEFAULT 0,
     sender_auth text,
     api_key text,
     tags text,
     lease text
   );
   -- large bodies in parts of PART_SIZE bytes (data is then empty), written
   -- before their message row; written_at lets a sweep tell a crash's
   -- leftovers from the parts another node is writing right now
   CREATE TABLE message_parts (
     message text NOT NULL,
     seq integer NOT NULL,
     data bytea NOT NULL,
     written_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (message, seq)
   );
   CREATE FUNCTION message_parts_gone() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN DELETE FROM message_parts WHERE message = old.id; RETURN old; END $$;
   CREATE TRIGGER message_parts_gone AFTER DELETE ON messages
     FOR EACH ROW EXECUTE FUNCTION message_parts_gone();
   CREATE TABLE recipients (
     message text NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
     address text NOT NULL,
     state text NOT NULL DEFAULT 'queued',
     attempts integer NOT NULL DEFAULT 0,
     next_attempt bigint NOT NULL,
     last_reply text,
     warmup_ms bigint NOT NULL DEFAULT 0,
     domain text GENERATED ALWAYS AS (lower(substring(address from '[^@]*$'))) STORED,
     owner text,
     lease text,
     leased_at bigint,
     maybe_sent boolean NOT NULL DEFAULT false,
     PRIMARY KEY (message, address)
   );
   CREATE INDEX recipients_due ON recipients (state, next_attempt, domain) WHERE lease IS NULL;
   CREATE INDEX recipients_domain_due ON recipients (state, domain, next_attempt) WHERE lease IS NULL;
   CREATE INDEX recipients_owner ON recipients (owner) WHERE owner IS NOT NULL;
   CREATE INDEX recipients_lease ON recipients (lease) WHERE lease IS NOT NULL;
   CREATE TABLE attempts (
     id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     message text NOT NULL,
     recipient text NOT NULL,
     at bigint NOT NULL,
     duration_ms integer NOT NULL,
     outcome text NOT NULL,
     reply text NOT NULL,
     mx text,
     ip text,
     tls text,
     tls_verified boolean
   );
   CREATE INDEX attempts_message ON attempts (message);
   CREATE INDEX attempts_at ON attempts (at);
   CREATE TABLE nodes (
     id text PRIMARY KEY,
     heartbeat_at bigint NOT NULL
   );`,
];

/** Applies the migrations this database has not seen yet; returns how many. */
export async function migrate(c: PoolClient): Promise<number> {
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await c.query(`CREATE TABLE IF NOT EXISTS posta_migrations (
                     version integer PRIMARY KEY,
                     applied_at timestamptz NOT NULL DEFAULT now()
                   )`);
    const { rows } = await c.query<{ v: number | null }>(
      'SELECT max(version) AS v FROM posta_migrations',
    );
    const have = rows[0]?.v ?? 0;
    if (have > MIGRATIONS.length) {
      throw new Error(
        `the PostgreSQL queue has schema version ${have}, newer than this posta's ${MIGRATIONS.length}: upgrade posta`,
      );
    }
    for (let v = have + 1; v <= MIGRATIONS.length; v++) {
      await c.query(MIGRATIONS[v - 1] ?? '');
      await c.query('INSERT INTO posta_migrations (version) VALUES ($1)', [v]);
    }
    await c.query('COMMIT');
    return MIGRATIONS.length - have;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}
