/** The dashboard over plain HTTP, as an admin who followed a `posta admin link` link. */
import assert from 'node:assert/strict';
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
