/**
 * Opening and closing listening sockets, the same way for every listener
 * (SMTP, https, http, ACME http-01): a port that cannot be had gives one
 * sentence saying why and what to do.
 */
import type { Server } from 'node:net';
import { formatEndpoint, type Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';

/** Listen on `e`; resolves with the port (the real one when `e.port` is 0). */
export function listen(server: Server, e: Endpoint, kind: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'the address is in use by another program'
          : err.code === 'EACCES'
            ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE'
            : err.message;
      reject(new Error(`Cannot listen for ${kind} on ${formatEndpoint(e)}: ${why}.`));
    };
    server.once('error', onError);
    server.listen(e.port, e.host, () => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : e.port);
    });
  });
}

/**
 * One server from `make` per endpoint, each listening (`kind` names it in an
 * error) and logged as listening (as `logKind`). When one endpoint cannot be
 * had, those already open are closed again.
 */
export async function listenAll(
  endpoints: readonly Endpoint[],
  kind: string,
  make: () => Server,
  log: Logger,
  logKind = kind,
): Promise<{ close(): Promise<void> }> {
  const servers: Server[] = [];
  try {
    for (const e of endpoints) {
      const server = make();
      await listen(server, e, kind);
      log.info({ kind: logKind, address: formatEndpoint(e) }, 'listening');
      servers.push(server);
    }
  } catch (err) {
    await closeAll(servers);
    throw err;
  }
  return { close: () => closeAll(servers) };
}

/** Stop listening on all of `servers`; resolves when each has closed. */
export async function closeAll(servers: readonly Server[]): Promise<void> {
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
}
