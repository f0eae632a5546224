/**
 * The runtime database: node:sqlite in WAL mode with synchronous=FULL, so a
 * committed transaction is on disk (fsync'd) before commit returns and survives
 * a crash or power loss. (The server's spool relaxes this for its own
 * connection and syncs the WAL itself, off the event loop: queue/wal-sync.ts.)
 * Schema changes are numbered migrations applied in order at open, tracked by
 * PRAGMA user_version.
 */
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { makeDirs } from '../fsutil/mkdir.ts';

export type Db = DatabaseSync;

export function openDb(path: string, migrations: readonly string[]): Db {
  if (path !== ':memory:') makeDirs(dirname(path), 0o700);
  const db = new DatabaseSync(path);
  // Private whatever the umask was when an earlier version made them.
  if (path !== ':memory:') {
    for (const f of [path, `${path}-wal`, `${path}-shm`]) {
      try {
        chmodSync(f, 0o600);
      } catch {
        // not there (yet), or not ours: a reader such as `posta queue list` run as root
      }
    }
  }
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = FULL');
  db.exec('PRAGMA foreign_keys = ON');
  db.exec('PRAGMA busy_timeout = 5000');
  const row = db.prepare('PRAGMA user_version').get() as { user_version: number };
  for (let v = row.user_version; v < migrations.length; v++) {
    transaction(db, () => {
      db.exec(migrations[v] ?? '');
      db.exec(`PRAGMA user_version = ${v + 1}`);
    });
  }
  return db;
}

export function transaction<T>(db: Db, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

const statements = new WeakMap<Db, Map<string, StatementSync>>();

/**
 * `sql` prepared once per connection and kept: the server runs the same few
 * statements for every message, and preparing one costs more than running it.
 */
export function prepared(db: Db, sql: string): StatementSync {
  let cache = statements.get(db);
  if (!cache) statements.set(db, (cache = new Map<string, StatementSync>()));
  let s = cache.get(sql);
  if (!s) cache.set(sql, (s = db.prepare(sql)));
  return s;
}
