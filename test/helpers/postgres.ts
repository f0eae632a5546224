/**
 * A throwaway PostgreSQL server for tests (Debian's `postgresql`, see
 * test/peers/ensure.sh): initdb in a fresh mktemp directory owned by the
 * `postgres` user (initdb refuses root, and the tests run as root), started
 * by pg_ctl on a random 127.x.y.z address and a free port, listening on that
 * address only (and on a unix socket in the same directory, for the admin
 * connection). fsync and synchronous_commit are on, as in production, so a
 * crash() (pg_ctl stop -m immediate: no shutdown checkpoint, crash recovery at
 * the next start) tests what a 250 promises.
 *
 * Loopback only: pg_hba.conf admits 127.0.0.0/8 by password (the role the
 * tests use) and the unix socket, whose directory only postgres and root may
 * enter, without one.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, randomLoopback } from './net.ts';

const run = promisify(execFile);

export interface Postgres {
  /** postgres://posta:…@127.x.y.z:port/posta, the database made at start. */
  url: string;
  /** A new, empty database owned by the same role; its URL. */
  database(): Promise<string>;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
  /** pg_ctl stop -m immediate: the server dies as in a power cut of the process. */
  crash(): Promise<void>;
  /** Starts it again on the same directory, address and port. */
  start(): Promise<void>;
  /** The postmaster's process id (the bench counts its CPU and memory), or null when it is down. */
  pid(): number | null;
}

/** The newest installed server's bin directory, or null when there is none. */
export function postgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = readdirSync(root);
  } catch {
    return null;
  }
  for (const v of versions.sort((a, b) => Number(b) - Number(a))) {
    const bin = join(root, v, 'bin');
    try {
      if (readdirSync(bin).includes('initdb') && readdirSync(bin).includes('pg_ctl')) return bin;
    } catch {
      // not a server install
    }
  }
  return null;
}

/** Why PostgreSQL tests cannot run here, or null when they can (for test `skip`). */
export function postgresMissing(): string | null {
  return postgresBin() === null
    ? 'PostgreSQL is not installed (apt-get install postgresql; see test/peers/ensure.sh)'
    : null;
}

export async function startPostgres(): Promise<Postgres> {
  const bin = postgresBin();
  if (!bin) throw new Error(postgresMissing() ?? 'no PostgreSQL');
  const root = process.getuid?.() === 0;
  // as root: run the server's programs as postgres, in a directory it owns
  const as = (cmd: string, args: string[]) =>
    root ? run('runuser', ['-u', 'postgres', '--', cmd, ...args]) : run(cmd, args);
  const dir = await mkdtemp(join(tmpdir(), 'posta-pg-'));
  if (root) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = join(dir, 'data');
  const log = join(dir, 'log');
  const host = randomLoopback();
  const port = await freePort(host);
  await as(join(bin, 'initdb'), [
    '-D',
    data,
    '--username=postgres',
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '--encoding=UTF8',
    '--locale=C',
    '--no-instructions',
  ]);
  await appendFile(
    join(data, 'postgresql.conf'),
    [
      `listen_addresses = '${host}'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      'fsync = on',
      'synchronous_commit = on',
      'max_connections = 200',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(data, 'pg_hba.conf'),
    'local all all trust\nhost all all 127.0.0.0/8 scram-sha-256\n',
  );
  const start = async () => {
    try {
      await as(join(bin, 'pg_ctl'), ['-D', data, '-l', log, '-w', '-t', '120', 'start']);
    } catch (err) {
      const text = await readFile(log, 'utf8').catch(() => '');
      throw new Error(`pg_ctl start failed: ${(err as Error).message}\n${text}`);
    }
  };
  const stopWith = (mode: string) =>
    as(join(bin, 'pg_ctl'), ['-D', data, '-m', mode, '-w', '-t', '120', 'stop']);
  await start();

  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const password = randomBytes(12).toString('hex');
  let n = 0;
  const database = async (name = `t${++n}`) => {
    await admin((c) => c.query(`CREATE DATABASE ${name} OWNER posta`));
    return `postgres://posta:${password}@${host}:${port}/${name}`;
  };
  await admin((c) => c.query(`CREATE ROLE posta LOGIN PASSWORD '${password}'`));
  const url = await database('posta');
  return {
    url,
    database: () => database(),
    start,
    pid: () => {
      try {
        return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]) || null;
      } catch {
        return null;
      }
    },
    crash: async () => {
      await stopWith('immediate');
    },
    stop: async () => {
      await stopWith('fast').catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
