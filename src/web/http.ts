/**
 * The http listener ([listen] http, 127.0.0.1:8025 by default): the SES
 * and Resend APIs (api/http.ts), Prometheus metrics at GET /metrics (text
 * format 0.0.4) and GET /healthz; GET / is a short page saying the
 * dashboard is not built yet and pointing at those. It listens on loopback by default; applications
 * on other hosts reach the APIs over the https listener.
 */
import { createServer } from 'node:http';
import type { Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { listenAll } from '../net/listen.ts';
import { API_TIMEOUTS, type ApiHandler } from '../api/lazy.ts';

/** What GET / answers until the dashboard exists. */
const INDEX = `posta: the web dashboard is not built yet.

POST /v2/email/outbound-emails, POST / (Action=SendRawEmail, ...)
               the Amazon SES v2 and v1 APIs, signed with an access key
               from \`posta key create\`
POST /emails, POST /emails/batch, GET /emails/ID
               the Resend API, with the Resend API key (re_...) from
               \`posta key create\`
GET /metrics   Prometheus metrics (queue, deliveries, certificate expiry, ...)
GET /healthz   "ok" while the server runs

\`posta status\` on the server shows its health, queue and certificate.
`;

export async function startHttp(
  endpoints: readonly Endpoint[],
  metrics: Metrics,
  log: Logger,
  api: ApiHandler,
): Promise<{ close(): Promise<void> }> {
  return listenAll(
    endpoints,
    'http',
    () =>
      createServer(API_TIMEOUTS, (req, res) => {
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
