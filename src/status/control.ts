/**
 * The control socket: HTTP over a Unix socket at DATA/posta.sock (mode 0600,
 * so only the server's user and root can ask), read by `posta status`.
 * GET /status answers the server's health as JSON (see Status).
 */
import { createServer, request, type Server } from 'node:http';
import { chmod, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { ComplaintRate } from '../events/complaint-rate.ts';
import type { WarmupStatus } from '../warmup/schedule.ts';

export const SOCKET = 'posta.sock';

export interface Status {
  version: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  listeners: { kind: string; address: string }[];
  queue: { messages: number; queued: number; deferred: number; oldestSeconds: number };
  /** Delivery attempts per recipient by outcome. */
  lastHour: Record<string, number>;
  lastDay: Record<string, number>;
  /** failures and lastError: how ACME renewals go (failures 0 with [tls] files). */
  certificate: {
    names: string[];
    /** A self-signed stand-in until ACME's first certificate: its dates mean nothing. */
    temporary: boolean;
    notAfter: string;
    daysLeft: number;
    failures: number;
    lastError?: string | undefined;
  };
  /** The selectors that sign, by domain. */
  dkim: Record<string, string[]>;
  /** Domains with a DKIM key rotation under way: one line on where it is. */
  dkimRotation: Record<string, string>;
  /** Access keys in use: their quota and what they sent in the last 24 hours. */
  keys: { id: string; name: string; rate: number; daily: number; sentLast24Hours: number }[];
  /** Per sending domain, the last 7 days (events/complaint-rate.ts). */
  complaints: ComplaintRate[];
  /** Each [warmup] table: its day, today's limit and what was sent today (none: []). */
  warmup: WarmupStatus[];
  errors: { time: string; msg: string }[];
}

export async function startControl(
  dataDir: string,
  status: () => Promise<Status>,
): Promise<{ close(): Promise<void> }> {
  const path = join(dataDir, SOCKET);
  await unlink(path).catch(() => {}); // left by a crash: a running server would hold the lock on the queue first
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/status') {
      status().then(
        (s) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(s)),
        (err: Error) =>
          res
            .writeHead(503, { 'content-type': 'application/json' })
            .end(JSON.stringify({ error: `cannot read the queue: ${err.message}` })),
      );
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o600);
  return {
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Ask the running server; null when none is listening on the socket. */
export function fetchStatus(dataDir: string): Promise<Status | null> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: join(dataDir, SOCKET), path: '/status', timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode !== 200) {
            let why = '';
            try {
              const e = (JSON.parse(body) as { error?: unknown }).error;
              if (typeof e === 'string') why = e;
            } catch {
              // not JSON: the status code says it
            }
            reject(
              new Error(`the server answered ${res.statusCode ?? '?'}${why ? `: ${why}` : ''}`),
            );
            return;
          }
          try {
            resolve(JSON.parse(body) as Status);
          } catch {
            reject(
              new Error(
                `the server answered ${res.statusCode ?? '?'} with something that is not JSON`,
              ),
            );
          }
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? resolve(null) : reject(err),
    );
    req.end();
  });
}
