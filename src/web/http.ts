/**
 * The http listener ([listen] http, 127.0.0.1:8025 by default): the SES
 * and Resend APIs (api/http.ts), Prometheus metrics at GET /metrics (text
 * format 0.0.4), GET /healthz, and the dashboard (dashboard/) at every other
 * path. It listens on loopback by default; applications on other hosts reach
 * the APIs over the https listener.
 */
import { createServer } from 'node:http';
import type { Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { listenAll } from '../net/listen.ts';
import { API_TIMEOUTS, type ApiHandler } from '../api/lazy.ts';
import type { DashboardHandler } from './dashboard/lazy.ts';
import { startAnswer } from './headers.ts';

export async function startHttp(
  endpoints: readonly Endpoint[],
  metrics: Metrics,
  log: Logger,
  api: ApiHandler,
  dashboard: DashboardHandler,
): Promise<{ close(): Promise<void> }> {
  return listenAll(
    endpoints,
    'http',
    () =>
      createServer(API_TIMEOUTS, (req, res) => {
        startAnswer(res);
        if (api(req, res)) return;
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
        dashboard(req, res);
      }),
    log,
  );
}
