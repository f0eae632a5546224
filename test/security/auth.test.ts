/**
 * AUTH under attack, against a real `posta serve` (issue 12, defects 5 to 7):
 * many sources guessing one account must not lock its owner out; parallel
 * guesses must not overrun the throttle; a flood of logins must not take the
 * server's memory; and a scrypt hash from before is upgraded at login.
 * The client is Python's smtplib (test/security/auth_client.py): STARTTLS and
 * AUTH PLAIN on 587, each connection bound to its own 127.x.y.z.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes, scryptSync } from 'node:crypto';
import { appendFile, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startServer, type TestServer } from '../helpers/server.ts';
import { posta } from '../helpers/posta.ts';

const CLIENT = new URL('auth_client.py', import.meta.url).pathname;
const PER_ACCOUNT = 20; // src/smtp/throttle.ts

interface Attempt {
  src: string;
  user: string;
  password: string;
}

/** Run the attempts at once; their AUTH reply codes, in order. */
function auth(s: TestServer, attempts: Attempt[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      [CLIENT],
      { timeout: 180_000, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        resolve(JSON.parse(stdout) as number[]);
      },
    );
    child.stdin?.end(JSON.stringify({ host: s.host, port: s.ports.submission, attempts }));
  });
}

const count = (codes: number[], code: number) => codes.filter((c) => c === code).length;
const logCount = (s: TestServer, from: number, msg: string) =>
  s.logs.slice(from).filter((l) => l.includes(`"msg":"${msg}"`)).length;

/** A /16 of loopback the server's own address is not in. */
function otherNet(s: TestServer, n: number): number {
  const mine = Number(s.host.split('.')[1]);
  return ((mine + n) % 250) + 1;
}

/** A number (kB) from /proc/PID/status. */
async function procKb(pid: number, field: 'VmRSS' | 'VmHWM'): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

test('guesses from many addresses do not lock the owner out; fresh addresses are throttled', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const owner = `127.${otherNet(s, 10)}.7.7`;
  assert.deepEqual(await auth(s, [{ src: owner, user: s.user, password: s.password }]), [235]);

  // 25 wrong passwords, each from its own /24 of another /16
  const net = otherNet(s, 20);
  const guesses = Array.from({ length: 25 }, (_, i) => ({
    src: `127.${net}.${i + 1}.1`,
    user: s.user,
    password: `guess-${i}`,
  }));
  const codes = await auth(s, guesses);
  // (how many of them were checked is the next test's)
  assert.equal(count(codes, 535) + count(codes, 454), 25, String(codes));

  const [fromOwner, fromOwnerNet, fresh] = await auth(s, [
    { src: owner, user: s.user, password: s.password },
    { src: owner.replace(/\.7$/, '.200'), user: s.user, password: s.password },
    { src: `127.${otherNet(s, 30)}.9.9`, user: s.user, password: s.password },
  ]);
  assert.equal(fromOwner, 235, 'the owner from the address that logged in before');
  assert.equal(fromOwnerNet, 235, 'the owner from the same /24');
  assert.equal(fresh, 454, 'an address that never logged in is held to the account limit');
});

test('100 parallel wrong passwords for one account: at most the limit are checked', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const from = s.logs.length;
  const net = otherNet(s, 40);
  const codes = await auth(
    s,
    Array.from({ length: 100 }, (_, i) => ({
      src: `127.${net}.${i + 1}.2`,
      user: s.user,
      password: `guess-${i}`,
    })),
  );
  const failed = logCount(s, from, 'auth failed');
  const throttled = logCount(s, from, 'auth throttled');
  assert.equal(failed, count(codes, 535), String(codes));
  assert.ok(failed <= PER_ACCOUNT, `${failed} real password checks, ${throttled} throttled`);
  assert.equal(count(codes, 535) + count(codes, 454), 100, String(codes));
});

test('40 parallel bad logins from 40 addresses: memory stays bounded', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const pid = s.child.pid ?? 0;
  const net = otherNet(s, 50);
  // One bad login first: the unknown-account path and TLS are warm.
  await auth(s, [{ src: `127.${net}.250.1`, user: 'warm@example.test', password: 'x' }]);
  const before = await procKb(pid, 'VmRSS');
  // Reset the peak (VmHWM) to the present RSS (proc(5), clear_refs 5).
  await writeFile(`/proc/${pid}/clear_refs`, '5');
  const codes = await auth(
    s,
    Array.from({ length: 40 }, (_, i) => ({
      src: `127.${net}.${i + 1}.3`,
      user: i % 2 ? s.user : `nobody${i}@example.test`,
      password: `wrong-${i}`,
    })),
  );
  const peak = await procKb(pid, 'VmHWM');
  const growthMb = (peak - before) / 1024;
  t.diagnostic(`RSS before ${Math.round(before / 1024)} MB, peak ${Math.round(peak / 1024)} MB`);
  assert.equal(codes.filter((c) => c === 535 || c === 454).length, 40, String(codes));
  assert.ok(growthMb < 100, `RSS grew by ${growthMb.toFixed(0)} MB under 40 parallel logins`);
});

test('a scrypt hash from before still logs in and is rewritten as argon2id', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const users = join(s.dir, 'domains/example.test/users');
  const salt = randomBytes(16);
  const key = scryptSync('old-password-1', salt, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 2 ** 28 });
  const old = `$scrypt$ln=17,r=8,p=1$${salt.toString('base64url')}$${key.toString('base64url')}`;
  await s.reload(() => appendFile(users, `old ${old} send-as=domain\n`));
  const modeBefore = (await stat(users)).mode;

  const from = s.logs.length;
  const src = `127.${otherNet(s, 60)}.1.1`;
  const login = { src, user: 'old@example.test', password: 'old-password-1' };
  assert.deepEqual(await auth(s, [login]), [235]);
  assert.equal((await s.logged(from, '"msg":"password hash upgraded"')).length, 1);

  const text = await readFile(users, 'utf8');
  assert.ok(!text.includes(old), 'the scrypt hash is gone');
  assert.match(text, /^old \$argon2id\$v=19\$m=19456,t=2,p=1\$\S+ send-as=domain$/m);
  assert.equal((await stat(users)).mode, modeBefore, 'the file keeps its mode');
  const cli = await posta([
    'authenticate',
    login.user,
    '--password',
    login.password,
    '--dir',
    s.dir,
  ]);
  assert.equal(cli.code, 0, cli.stderr);
  // and the server, once it has re-read the file, takes the password with the new hash
  await s.logged(from, '"msg":"config folder reloaded"');
  assert.deepEqual(await auth(s, [{ ...login, password: 'wrong-password' }, login]), [535, 235]);
});

test('parallel wrong passwords against a scrypt hash from before run one scrypt at a time', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const users = join(s.dir, 'domains/example.test/users');
  const salt = randomBytes(16);
  const key = scryptSync('old-password-2', salt, 32, { N: 2 ** 17, r: 8, p: 1, maxmem: 2 ** 28 });
  const old = `$scrypt$ln=17,r=8,p=1$${salt.toString('base64url')}$${key.toString('base64url')}`;
  await s.reload(() => appendFile(users, `old2 ${old}\n`));
  const pid = s.child.pid ?? 0;
  const net = otherNet(s, 70);
  await auth(s, [{ src: `127.${net}.250.1`, user: 'warm@example.test', password: 'x' }]);
  const before = await procKb(pid, 'VmRSS');
  await writeFile(`/proc/${pid}/clear_refs`, '5');
  const codes = await auth(
    s,
    Array.from({ length: PER_ACCOUNT }, (_, i) => ({
      src: `127.${net}.${i + 1}.4`,
      user: 'old2@example.test',
      password: `wrong-${i}`,
    })),
  );
  const peak = await procKb(pid, 'VmHWM');
  const growthMb = (peak - before) / 1024;
  t.diagnostic(`RSS before ${Math.round(before / 1024)} MB, peak ${Math.round(peak / 1024)} MB`);
  assert.equal(count(codes, 535), PER_ACCOUNT, String(codes));
  // one scrypt at N = 2^17 holds 128 MiB; two at once would pass 256
  assert.ok(growthMb < 200, `RSS grew by ${growthMb.toFixed(0)} MB`);
});
