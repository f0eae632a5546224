/**
 * The http-01 responder (RFC 8555 §8.3) on [acme] http_listen (port 80):
 * GET /.well-known/acme-challenge/TOKEN answers the key authorization of a
 * pending challenge; anything else is 404.
 */
import { createServer } from 'node:http';
import type { Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';
import { listenAll } from '../net/listen.ts';
import type { Challenges } from './challenges.ts';

const PREFIX = '/.well-known/acme-challenge/';

export async function startHttp01(
  endpoints: readonly Endpoint[],
  challenges: Challenges,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  return listenAll(
    endpoints,
    'ACME http-01',
    () =>
      createServer((req, res) => {
        const token = req.url?.startsWith(PREFIX) ? req.url.slice(PREFIX.length) : '';
        const answer = challenges.http.get(token);
        if (req.method !== 'GET' || answer === undefined) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
      }),
    log,
    'acme-http',
  );
}
