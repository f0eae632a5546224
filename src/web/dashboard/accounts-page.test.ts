import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import pino from 'pino';
import { addUser } from '../../users/accounts.ts';
import { verifyPassword } from '../../users/hash.ts';
import { accountRoutes } from './accounts-page.ts';

async function folder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'posta-accounts-page-'));
  await writeFile(join(dir, 'posta.toml'), 'hostname = "mail.example.test"\n');
  await mkdir(join(dir, 'domains/example.test'), { recursive: true });
  return dir;
}

function app(dir: string) {
  const a = new Hono();
  accountRoutes(a, {
    dir,
    log: pino({ level: 'silent' }),
    served: (d) => d === 'example.test',
    clientIp: () => '127.0.0.1',
    failed: (c, error, status) => c.text(error, status),
  });
  const post = (path: string, fields: Record<string, string>) =>
    a.request(path, { method: 'POST', body: new URLSearchParams(fields) });
  return { post };
}

test('an account added here is written as `posta user add` writes it, hash aside', async () => {
  const [here, cli] = [await folder(), await folder()];
  const r = await app(here).post('/domains/example.test/accounts', {
    address: 'Web',
    password: 'web password one',
    send_as_domain: '1',
  });
  assert.equal(r.status, 303);
  assert.match(r.headers.get('location') ?? '', /^\/domains\?done=Added/);
  await addUser(cli, 'web@example.test', 'web password one', { sendAsDomain: true });
  const file = (dir: string) => readFile(join(dir, 'domains/example.test/users'), 'utf8');
  const hash = (text: string) => /^web (\S+) send-as=domain$/m.exec(text)?.[1] ?? '';
  const [mine, theirs] = [await file(here), await file(cli)];
  assert.equal(mine.replace(hash(mine), 'HASH'), theirs.replace(hash(theirs), 'HASH'));
  assert.ok(await verifyPassword('web password one', hash(mine)));
  await rm(here, { recursive: true });
  await rm(cli, { recursive: true });
});

test("a refused edit answers with the CLI's sentence and writes nothing", async () => {
  const dir = await folder();
  const { post } = app(dir);
  const short = await post('/domains/example.test/accounts', { address: 'a', password: 'short' });
  assert.equal(short.status, 400);
  assert.match(await short.text(), /at least 8 characters/);
  const other = await post('/domains/example.test/accounts', {
    address: 'a@other.test',
    password: 'long enough',
  });
  assert.equal(other.status, 400);
  assert.match(await other.text(), /not an address of example\.test/);
  const none = await post('/domains/example.test/accounts/passwd', {
    address: 'nobody',
    password: 'long enough',
  });
  assert.equal(none.status, 400);
  assert.match(await none.text(), /There is no account nobody@example\.test/);
  assert.equal((await post('/domains/other.test/accounts', {})).status, 404);
  assert.equal((await post('/domains/example.test/accounts/rename', {})).status, 404);
  await assert.rejects(readFile(join(dir, 'domains/example.test/users')));
  await rm(dir, { recursive: true });
});
