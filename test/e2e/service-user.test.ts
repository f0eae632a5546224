/**
 * A config folder that belongs to the service user (as after `posta
 * install-service`), edited by root with the CLI: every edit keeps the files'
 * owner and mode, so the server running as that user (here nobody) still
 * reloads them, takes the new account's AUTH (swaks), and starts again.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { initFolder, posta } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const run = promisify(execFile);
let s: TestServer;
let nobody: { uid: number; gid: number };

before(async () => {
  s = await startServer({ asNobody: true });
  const id = (flag: string) => run('id', [flag, 'nobody']).then((r) => Number(r.stdout.trim()));
  nobody = {
    uid: await id('-u'),
    gid: Number((await run('getent', ['group', 'nogroup'])).stdout.split(':')[2]),
  };
});

after(async () => {
  await s?.stop();
});

/** swaks: STARTTLS + AUTH on 587, quitting after AUTH; exit 0 when accepted. */
async function auth(user: string, password: string): Promise<number> {
  const r = await run('/usr/bin/swaks', [
    ...['--timeout', '15', '--server', `${s.host}:${s.ports.submission}`, '--tls'],
    ...['--auth', 'PLAIN', '--auth-user', user, '--auth-password', password],
    ...['--quit-after', 'AUTH'],
  ]).then(
    () => 0,
    (err: { code: number }) => err.code,
  );
  return r;
}

async function owner(file: string) {
  const st = await stat(join(s.dir, 'domains/example.test', file));
  return { uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8) };
}

const edits: [string, string[], string][] = [
  ['user add', ['user', 'add', 'new@example.test', '--password', 'first-password'], 'users'],
  ['alias add', ['alias', 'add', 'sales@example.test', 'new@example.test'], 'aliases'],
  ['user passwd', ['user', 'passwd', 'new@example.test', '--password', 'second-password'], 'users'],
  ['alias del', ['alias', 'del', 'sales@example.test'], 'aliases'],
];

test('root edits of a folder owned by the service user keep owner and mode', async () => {
  const users = await owner('users');
  const aliases = await owner('aliases');
  assert.deepEqual(users, { ...nobody, mode: '640' });
  assert.equal(aliases.uid, nobody.uid);
  for (const [name, args, file] of edits) {
    await s.reload(async () => {
      const r = await posta([...args, '--dir', s.dir]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    });
    assert.deepEqual(await owner(file), file === 'users' ? users : aliases, name);
    if (name === 'user add') assert.equal(await auth('new@example.test', 'first-password'), 0);
  }
  assert.equal(await auth('new@example.test', 'second-password'), 0, 'the new password works');
  assert.notEqual(await auth('new@example.test', 'first-password'), 0);
  await s.reload(() => posta(['user', 'del', 'new@example.test', '--dir', s.dir]));
  assert.deepEqual(await owner('users'), users);
  assert.notEqual(await auth('new@example.test', 'second-password'), 0, 'the account is gone');
  assert.ok(!s.logs.some((l) => l.includes('reload failed')), s.logs.join('\n'));
  await s.stop();
  await s.restart();
  assert.equal(await auth(s.user, s.password), 0, 'the restarted server reads the folder');
});

test('a domain that root adds belongs to the service user, and the server takes it', async () => {
  await s.reload(async () => {
    const r = await posta(['init', 'other.test', '--dir', s.dir]);
    assert.equal(r.code, 0, r.stderr);
  });
  const top = join(s.dir, 'domains/other.test');
  for (const p of ['', ...(await readdir(top, { recursive: true }))]) {
    const st = await stat(join(top, p));
    assert.deepEqual({ uid: st.uid, gid: st.gid }, nobody, `domains/other.test/${p}`);
  }
  await s.reload(async () => {
    const r = await posta([
      'user',
      'add',
      'a@other.test',
      '--password',
      'other-password',
      '--dir',
      s.dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
  assert.equal(await auth('a@other.test', 'other-password'), 0, 'its account logs in');
  assert.ok(!s.logs.some((l) => l.includes('reload failed')), s.logs.join('\n'));
});

test("root's commands in a folder of another user's whose server root runs stay root", async (t) => {
  // As when alice owns the folder and root ran `posta serve` there: data/ is root's.
  const own = await startServer();
  t.after(() => own.stop());
  await run('chown', ['nobody:nogroup', own.dir, join(own.dir, 'posta.toml')]);
  await run('chown', ['-R', 'nobody:nogroup', join(own.dir, 'domains')]);
  for (const args of [['status'], ['queue', 'list']]) {
    const r = await posta([...args, '--dir', own.dir]);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  }
});

test("root's posta sendmail in the service user's folder, no server yet: the queue it makes is that user's", async () => {
  const { dir } = await initFolder();
  await run('chown', ['-R', 'nobody:nogroup', dirname(dir)]);
  const r = await posta(['sendmail', '-f', 'i@example.test', 'x@dest.test', '--dir', dir], {
    input: 'Subject: x\n\nx\n',
  });
  assert.equal(r.code, 0, r.stderr);
  for (const f of ['', ...(await readdir(join(dir, 'data'), { recursive: true }))]) {
    assert.equal((await stat(join(dir, 'data', f))).uid, nobody.uid, `data/${f}`);
  }
});
