/**
 * The http listener ([listen] http, 127.0.0.1:8025 by default): Prometheus
 * metrics at GET /metrics (text format 0.0.4) and GET /healthz; GET / is a
 * short page saying the dashboard is not built yet and pointing at those. It
 * listens on loopback by default; put it elsewhere only behind a firewall.
 */
import { createServer } from 'node:http';
import type { Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { listenAll } from '../net/listen.ts';

/** What GET / answers until the dashboard exists. */
const INDEX = `posta: the web dashboard is not built yet.

GET /metrics   Prometheus metrics (queue, deliveries, certificate expiry, ...)
GET /healthz   "ok" while the server runs

\`posta status\` on the server shows its health, queue and certificate.
`;

export async function startHttp(
  endpoints: readonly Endpoint[],
  metrics: Metrics,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  return listenAll(
    endpoints,
    'http',
    () =>
      createServer((req, res) => {
        if (req.method === 'GET' && req.url === '/metrics') {
          metrics.registry.metrics().then(
            (text) =>
              res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
            (err: Error) =>
              res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
          );
          return;
        }
        if (req.method === 'GET' && req.url === '/') {
          res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(INDEX);
          return;
        }
        if (req.method === 'GET' && req.url === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
          return;
        }
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      }),
    log,
  );
}
