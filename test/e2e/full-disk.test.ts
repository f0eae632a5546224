/**
 * A full disk: posta's data folder on a small tmpfs (root mounts it). When
 * the queue cannot grow, the end of DATA gets 452 4.3.1 (RFC 3463: mail
 * system full) from swaks's point of view; every message acknowledged
 * before stays whole in the queue; the server goes on, and takes mail again
 * once there is room.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { posta, tempDir } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { readQueue } from '../helpers/smtp.ts';

const run = promisify(execFile);
let s: TestServer | undefined;
let mounted: string | undefined;

after(async () => {
  try {
    await s?.stop();
  } finally {
    // Lazily: a mount left behind would outlive the test run.
    if (mounted) await run('umount', ['-l', mounted]);
  }
});

/** swaks on 587 with a body of `body`: its exit code and the server's last reply. */
async function send(server: TestServer, body: string): Promise<{ code: number; out: string }> {
  const r = await run(
    'swaks',
    [
      ...['--server', `${server.host}:${server.ports.submission}`, '--tls'],
      ...['--auth-user', server.user, '--auth-password', server.password],
      ...['--from', server.user, '--to', 'someone@elsewhere.test'],
      ...['--body', `@${body}`],
    ],
    { maxBuffer: 64 << 20 },
  ).then(
    (x) => ({ code: 0, out: x.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
  );
  // swaks echoes what it sends (the body too): keep only the server's lines,
  // `<~ ` over TLS, with a `*` when the reply is an error.
  return {
    code: r.code,
    out: r.out
      .split('\n')
      .filter((l) => /^<[~*]* /.test(l))
      .join('\n'),
  };
}

/** A fresh server whose data folder is a tmpfs of `size` (e.g. "2m"), and that folder. */
async function serverOnTmpfs(size: string): Promise<{ server: TestServer; data: string }> {
  // a server and mount of an earlier test go first
  await s?.stop();
  if (mounted) await run('umount', ['-l', mounted]);
  mounted = undefined;
  s = await startServer();
  await s.stop();
  const data = join(s.dir, 'data');
  await rm(data, { recursive: true, force: true });
  await mkdir(data, { mode: 0o700 });
  await run('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'posta-test', data]);
  mounted = data;
  await s.restart();
  return { server: s, data };
}

/** Sends `body` until a reply is not a 250 (at most 20 times): the ids acknowledged and that reply. */
async function fill(
  server: TestServer,
  body: string,
): Promise<{ accepted: string[]; full: { code: number; out: string } | undefined }> {
  const accepted: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await send(server, body);
    const id = /queued as (\w+)/.exec(r.out)?.[1];
    if (r.code !== 0 || !id) return { accepted, full: r };
    accepted.push(id);
  }
  return { accepted, full: undefined };
}

interface Listed {
  id: string;
  size: number;
}

test('a full disk gets 452 4.3.1 at the end of DATA, keeps what it acknowledged, and recovers', async () => {
  // The data folder becomes a 2 MB tmpfs: a few 300 KB messages fill it.
  const { server, data } = await serverOnTmpfs('2m');

  const body = join(await tempDir('posta-full-'), 'body.txt');
  await writeFile(body, `${'x'.repeat(74)}\r\n`.repeat(4000)); // 304 KB

  const { accepted, full } = await fill(server, body);
  assert.ok(full, `the 2 MB disk never filled: ${accepted.length} messages accepted`);
  assert.ok(accepted.length > 0, 'messages were accepted before the disk filled');
  assert.match(full.out, /^<~?\* +452 4\.3\.1 Insufficient storage; try again later$/m);

  // Everything acknowledged is there, whole; the refused message is not.
  const listed = await posta(['queue', 'list', '--json', '--dir', server.dir]);
  assert.equal(listed.code, 0, listed.stderr);
  const queue = JSON.parse(listed.stdout) as Listed[];
  assert.deepEqual(queue.map((m) => m.id).sort(), [...accepted].sort());
  const sizes = new Set(queue.map((m) => m.size));
  assert.equal(sizes.size, 1, `every copy has the same size: ${[...sizes].join(', ')}`);

  // Room again: the running server takes mail at once.
  await run('mount', ['-o', 'remount,size=64m', data]);
  const again = await send(server, body);
  assert.equal(again.code, 0, again.out);
  assert.match(again.out, /^<~? +250 2\.0\.0 Ok: queued as \w+$/m);
  assert.equal(server.child.exitCode, null, 'the server kept running');
});

test('a full disk with messages over 1 MiB (a temporary file, then the queue in parts) gets 452 and leaves nothing behind', async () => {
  const { server, data } = await serverOnTmpfs('8m');

  const body = join(await tempDir('posta-full-'), 'body.txt');
  const text = `${'y'.repeat(74)}\r\n`.repeat(20_000); // 1.5 MB
  await writeFile(body, text);

  const { accepted, full } = await fill(server, body);
  assert.ok(full, `the 8 MB disk never filled: ${accepted.length} messages accepted`);
  assert.ok(accepted.length > 0, 'messages were accepted before the disk filled');
  assert.match(full.out, /^<~?\* +452 4\.3\.1 Insufficient storage; try again later$/m);
  assert.deepEqual(await readdir(join(data, 'incoming')), [], 'no temporary file is left');

  const listed = await posta(['queue', 'list', '--json', '--dir', server.dir]);
  assert.equal(listed.code, 0, listed.stderr);
  const queue = JSON.parse(listed.stdout) as Listed[];
  assert.deepEqual(queue.map((m) => m.id).sort(), [...accepted].sort());
  const whole = readQueue(server.dir).filter((m) => m.data.includes(`\r\n\r\n${text}`));
  assert.equal(whole.length, accepted.length, 'every acknowledged message is there whole');
  assert.equal(new Set(readQueue(server.dir).map((m) => m.data.length)).size, 1);

  await run('mount', ['-o', 'remount,size=64m', data]);
  const again = await send(server, body);
  assert.equal(again.code, 0, again.out);
  assert.equal(server.child.exitCode, null, 'the server kept running');
});
