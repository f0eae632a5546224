/**
 * Opening and closing listening sockets, the same way for every listener
 * (SMTP, https, http, ACME http-01): a port that cannot be had gives one
 * sentence saying why and what to do, and closing is bounded: connections
 * still open after a short grace are destroyed.
 */
import { isIP, type Server, type Socket } from 'node:net';
import { formatEndpoint, type Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';

/** How long open connections may finish when a listener closes. */
export const CLOSE_GRACE_MS = 2000;

/** The connections of each server, for closeAll to destroy. */
const open = new WeakMap<Server, Set<Socket>>();

/** Listen on `e`; resolves with the port (the real one when `e.port` is 0). */
export function listen(server: Server, e: Endpoint, kind: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? 'the address is in use by another program'
          : err.code === 'EACCES'
            ? 'ports below 1024 need root or CAP_NET_BIND_SERVICE'
            : err.code === 'EADDRNOTAVAIL'
              ? 'no network interface has this address'
              : err.code === 'EAFNOSUPPORT'
                ? `this system has no ${isIP(e.host) === 6 ? 'IPv6' : 'IPv4'} (disabled in the kernel); remove ${formatEndpoint(e)} from posta.toml's [listen]`
                : err.message;
      reject(new Error(`Cannot listen for ${kind} on ${formatEndpoint(e)}: ${why}.`));
    };
    const sockets = new Set<Socket>();
    open.set(server, sockets);
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    server.once('error', onError);
    // An IPv6 socket is IPv6 only, as in Postfix and chasquid: with Linux's
    // default net.ipv6.bindv6only = 0, "[::]:25" would otherwise take IPv4
    // too and collide with the "0.0.0.0:25" listed beside it.
    server.listen({ port: e.port, host: e.host, ipv6Only: isIP(e.host) === 6 }, () => {
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
      servers.push(server);
      await listen(server, e, kind);
      log.info({ kind: logKind, address: formatEndpoint(e) }, 'listening');
    }
  } catch (err) {
    await closeAll(servers);
    throw err;
  }
  return { close: () => closeAll(servers) };
}

/**
 * Stop listening on all of `servers`; connections still open after
 * CLOSE_GRACE_MS are destroyed. Resolves when each has closed.
 */
export async function closeAll(servers: readonly Server[]): Promise<void> {
  await Promise.all(servers.map(closeOne));
}

function closeOne(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      for (const s of open.get(server) ?? []) s.destroy();
    }, CLOSE_GRACE_MS);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    // http(s): idle keep-alive connections need not wait for the grace.
    (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
  });
}
