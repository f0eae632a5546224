/**
 * The http listener ([listen] http, 127.0.0.1:8025 by default): Prometheus
 * metrics at GET /metrics (text format 0.0.4) and GET /healthz. It listens
 * on loopback by default; put it elsewhere only behind a firewall.
 */
import { createServer } from 'node:http';
import type { Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { listenAll } from '../net/listen.ts';

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
        if (req.method === 'GET' && req.url === '/healthz') {
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
          return;
        }
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      }),
    log,
  );
}
