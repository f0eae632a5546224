/**
 * The queue's engine as [storage] chooses it (config/load.ts StorageConfig):
 * the spool in SQLite, or PostgreSQL shared with other nodes, with this
 * node's heartbeat and the reaper of silent nodes' work.
 *
 * Invariants:
 * - The database password comes from [storage] password_file, else
 *   $POSTA_STORAGE_PASSWORD, never from posta.toml (the schema refuses a URL
 *   that holds one), and it is never logged.
 * - pg is loaded only when the queue is on PostgreSQL.
 * - A node reaps only after its own heartbeats have gone through for a whole
 *   lease: after the database was away, every live node's heartbeat is stale,
 *   and reaping at once would take their work from all of them.
 */
import { readFileSync } from 'node:fs';
import type { StorageConfig } from '../config/load.ts';
import { PostaError } from '../errors.ts';
import type { Logger } from '../log/log.ts';
import type { Spool } from '../queue/spool.ts';
import { localLimits, type SharedLimits } from './limits.ts';
import type { QueueStore } from './queue-store.ts';
import { SqliteQueueStore } from './sqlite/queue.ts';
import type { PgQueueStore } from './postgres/store.ts';
import { openQueueDb, openQueueDbIfAny } from '../queue/spool.ts';
import { sqliteSuppressions, type SuppressionList } from '../suppression/suppression.ts';
import { sqliteQueueView, type QueueView } from '../queue/inspect.ts';

export interface OpenedQueue {
  store: QueueStore;
  /** Connection slots and rates shared with the other nodes. */
  limits: SharedLimits;
  /** Stops the heartbeat, then closes the store. */
  close(): Promise<void>;
}

/** Heartbeats per lease: a node is reaped after missing this many in a row. */
const BEATS_PER_LEASE = 5;

export async function openQueue(
  storage: StorageConfig,
  spool: Spool,
  log: Logger,
): Promise<OpenedQueue> {
  if (!storage.url) {
    // the spool is closed by its owner (app.ts), after the checkpoints
    const store = new SqliteQueueStore(spool, storage.node);
    return { store, limits: localLimits, close: () => Promise.resolve() };
  }
  const { PgQueueStore: Pg } = await import('./postgres/store.ts');
  const shown = storage.url;
  let store: PgQueueStore;
  try {
    store = await Pg.open({
      url: withPassword(storage),
      node: storage.node,
      onError: (err) => log.warn({ err: err.message }, 'a PostgreSQL connection failed'),
    });
  } catch (err) {
    throw new PostaError(
      `Cannot open the queue on PostgreSQL (${shown}) as node "${storage.node}": ${(err as Error).message}.`,
    );
  }
  log.info({ database: shown, node: storage.node }, 'the queue is on PostgreSQL');
  const beat = heartbeat(store, storage.leaseMs, log);
  return {
    store,
    limits: store.limits(),
    close: async () => {
      beat.stop();
      await store.close();
    },
  };
}

/**
 * A connection for a command beside the server (`posta suppress`, `posta
 * queue`) to the shared database: its own small pool, taking no node name
 * (it holds no claims), and `wrap`, which turns each failure of an object's
 * functions into one sentence that names the database.
 */
async function toolPool(storage: StorageConfig, what: string) {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: withPassword(storage), max: 1 });
  pool.on('error', () => {}); // an idle connection dropped: the next query says so
  const shown = storage.url;
  /** `o` with each of its functions' failures made one sentence. */
  const wrap = <O extends object>(o: O): O => {
    const out: Record<string, unknown> = {};
    for (const [k, fn] of Object.entries(o) as [string, (...a: unknown[]) => Promise<unknown>][]) {
      out[k] = async (...a: unknown[]) => {
        try {
          return await fn(...a);
        } catch (err) {
          throw new PostaError(
            `Cannot use ${what} on PostgreSQL (${shown}): ${(err as Error).message}.`,
          );
        }
      };
    }
    return out as O;
  };
  return { pool, wrap };
}

/**
 * The suppression lists for a command beside the server (`posta suppress`):
 * in this node's SQLite queue (made when `create`, else an empty one when
 * there is none), or in the shared database.
 */
export async function openSuppressions(
  storage: StorageConfig,
  dataDir: string,
  create: boolean,
): Promise<{ list: SuppressionList; close(): Promise<void> }> {
  if (!storage.url) {
    const db = create ? openQueueDb(dataDir) : openQueueDbIfAny(dataDir);
    return { list: sqliteSuppressions(db), close: () => Promise.resolve(db.close()) };
  }
  const { pgSuppressions } = await import('./postgres/suppressions.ts');
  const { pool, wrap } = await toolPool(storage, 'the suppression list');
  return { list: wrap(pgSuppressions(pool)), close: () => pool.end() };
}

/**
 * The queue for `posta queue`: this node's SQLite queue (an empty one when
 * there is none), or the whole cluster's in the shared database.
 */
export async function openQueueView(
  storage: StorageConfig,
  dataDir: string,
): Promise<{ view: QueueView; close(): Promise<void> }> {
  if (!storage.url) {
    const db = openQueueDbIfAny(dataDir);
    return { view: sqliteQueueView(db), close: () => Promise.resolve(db.close()) };
  }
  const { pgQueueView } = await import('./postgres/inspect.ts');
  const { pool, wrap } = await toolPool(storage, 'the queue');
  return { view: wrap(pgQueueView(pool)), close: () => pool.end() };
}

/** The URL to connect with: [storage] url with the password put in. */
function withPassword(storage: StorageConfig): string {
  let password: string | undefined;
  if (storage.passwordFile) {
    try {
      password = readFileSync(storage.passwordFile, 'utf8').trim();
    } catch (err) {
      throw new PostaError(
        `Cannot read [storage] password_file ${storage.passwordFile}: ${(err as Error).message}.`,
      );
    }
  } else {
    password = process.env.POSTA_STORAGE_PASSWORD || undefined;
  }
  const url = new URL(storage.url ?? '');
  // encoded here: URL's setter leaves "%" alone, and pg decodes what it finds
  if (password) url.password = encodeURIComponent(password);
  return url.toString();
}

/**
 * Every lease/5: say this node is alive, then give back the work of nodes
 * silent for a lease (once this node has been heard for a lease itself).
 */
function heartbeat(store: QueueStore, leaseMs: number, log: Logger): { stop(): void } {
  let healthySince = Date.now();
  let failing = false;
  let running = false;
  const beat = async () => {
    const now = Date.now();
    try {
      await store.heartbeat(now);
      if (failing) {
        failing = false;
        healthySince = now;
        log.info('the database answers heartbeats again');
      }
    } catch (err) {
      if (!failing) {
        log.error(
          { err: (err as Error).message },
          "cannot send this node's heartbeat to the database; after a lease the other nodes take its mail back",
        );
      }
      failing = true;
      return;
    }
    if (now - healthySince < leaseMs) return;
    const reaped = await store.reap(leaseMs, now);
    if (reaped.recipients) {
      log.warn(
        { nodes: reaped.nodes, recipients: reaped.recipients },
        'took back the claimed mail of nodes silent for a lease; it is sent again, and may arrive twice',
      );
    }
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    beat()
      .catch((err: Error) => log.error({ err: err.message }, 'cannot reap silent nodes'))
      .finally(() => (running = false));
  }, leaseMs / BEATS_PER_LEASE);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
