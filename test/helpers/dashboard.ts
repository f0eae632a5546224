/** The dashboard from a test: as an admin who followed a `posta admin link` link, or raw. */
import assert from 'node:assert/strict';
import type { request as httpRequest, RequestOptions } from 'node:http';
import type { request as httpsRequest, RequestOptions as HttpsRequestOptions } from 'node:https';
import { posta } from './posta.ts';
import type { TestServer } from './server.ts';

/** GET `path` of the dashboard as an admin, with a session from a fresh one-time link. */
export async function adminPage(s: TestServer, path: string): Promise<Response> {
  const link = await posta(['admin', 'link', '--dir', s.dir]);
  assert.equal(link.code, 0, link.stderr);
  const opened = await fetch(link.stdout.trim(), { redirect: 'manual' });
  assert.equal(opened.status, 303, 'the link logs in and redirects');
  const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  return fetch(`http://${s.host}:${s.ports.http}${path}`, { headers: { cookie } });
}

export interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * One request with exactly the headers given (a rebound Host, a forged
 * Origin, ...), through node:http's or node:https's request().
 */
export function rawRequest(
  send: typeof httpRequest | typeof httpsRequest,
  options: RequestOptions & HttpsRequestOptions,
  body = '',
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = send(options, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
