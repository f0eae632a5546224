/**
 * One running posta per node name on a database: a session advisory lock on
 * the name, held by a connection of its own for as long as the node runs.
 *
 * Why: a node that starts gives back what its name held before (a restart
 * after kill -9, store.ts), which is right only if no other process runs
 * under that name. Two machines cloned with the same host name would
 * otherwise free each other's claims, and deliver everything twice.
 *
 * Invariants:
 * - PostgreSQL drops a session's advisory locks when its connection ends, so
 *   the name is free again once a killed node's connection is gone: at once
 *   on the same machine (the kernel closes the socket), and within about 25 s
 *   for a machine that vanished, by the TCP keepalives this session asks of
 *   the server.
 * - A start waits that long for an earlier process of the name to go away,
 *   then refuses, with the name in the error.
 * - Lost (the database restarted), the lock is taken again on reconnection; a
 *   name taken meanwhile by another process is logged, every time it is
 *   tried, as the misconfiguration it is.
 */
import pg from 'pg';

/** Advisory lock keys of node names: class 0x706f7374 ("post"), then the name's hash. */
const TRY_LOCK = 'SELECT pg_try_advisory_lock(1886352244, hashtext($1)) AS ok';
/** Server-side keepalives: a vanished peer's session (and its lock) ends in about 25 s. */
const KEEPALIVE =
  'SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3';
const RETRY_MS = 1000;
const CONNECT_TIMEOUT_MS = 5_000;

export interface NodeLockOptions {
  url: string;
  node: string;
  /** How long a start waits for the name to be free. */
  waitMs: number;
  /** The lock was lost and could not be taken again (logged by the caller). */
  onError: (err: Error) => void;
}

export class NodeLock {
  private client: pg.Client | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly o: NodeLockOptions;

  private constructor(o: NodeLockOptions) {
    this.o = o;
  }

  /** Takes the node's name, waiting up to waitMs for an earlier holder to go away. */
  static async take(o: NodeLockOptions): Promise<NodeLock> {
    const lock = new NodeLock(o);
    const deadline = Date.now() + o.waitMs;
    for (;;) {
      if (await lock.attempt()) return lock;
      if (Date.now() >= deadline) {
        await lock.close();
        throw new Error(
          `another posta is running as node "${o.node}" on this database; give each one its own [storage] node`,
        );
      }
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }

  /** One try: true once this node holds its name. Connection errors reject. */
  private async attempt(): Promise<boolean> {
    if (!this.client) {
      const client = new pg.Client({
        connectionString: this.o.url,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
        keepAlive: true,
        application_name: `posta ${this.o.node}`,
      });
      client.on('error', () => this.lost(client));
      client.on('end', () => this.lost(client));
      await client.connect();
      this.client = client;
      await client.query(KEEPALIVE);
    }
    const { rows } = await this.client.query<{ ok: boolean }>(TRY_LOCK, [this.o.node]);
    return rows[0]?.ok === true;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = null;
    client.end().catch(() => {});
    if (!this.closed) this.retake();
  }

  private retake(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.attempt().then(
        (ok) => {
          if (ok) return;
          this.o.onError(
            new Error(
              `another posta took node "${this.o.node}" on this database while its connection was down; give each one its own [storage] node`,
            ),
          );
          this.retake();
        },
        () => {
          const c = this.client;
          this.client = null;
          c?.end().catch(() => {});
          this.retake();
        },
      );
    }, RETRY_MS);
    this.timer.unref();
  }

  /** Gives the name back (the session ends). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => {});
  }
}
