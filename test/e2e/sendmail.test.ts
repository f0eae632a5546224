/**
 * posta as the machine's sendmail: a symlink named sendmail to bin/posta, run
 * as cron and PHP run it (no --dir, no $POSTA_DIR, a working folder with no
 * ./posta), finds the installed service's config folder through its link
 * ($POSTA_CONFIG_LINK here, and the real /etc/posta when the machine has
 * none), and the server records which local user submitted, as the kernel
 * says and not as the client claims.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, lstat, mkdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { initFolder, posta, POSTA, shareConfig, tempDir } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';

let destination: Awaited<ReturnType<typeof startMxFor>>;
let s: TestServer;
let bin: string; // a folder with sendmail -> bin/posta
let link: string; // the service's config link, as install-service makes it
let cwd: string; // where cron runs it: no ./posta
const nobody = Number(execFileSync('id', ['-u', 'nobody']).toString());

before(async () => {
  destination = await startMxFor('dest.test');
  // As installed: the server runs as its own user (here nobody), the clients as others.
  s = await startServer({ dns: destination.dns.endpoint, asNobody: true });
  await shareConfig(s.dir);
  const tmp = await tempDir();
  await chmod(tmp, 0o755);
  bin = join(tmp, 'bin');
  cwd = join(tmp, 'home');
  await mkdir(bin);
  await mkdir(cwd);
  await symlink(POSTA, join(bin, 'sendmail'));
  link = join(tmp, 'etc-posta');
  await symlink(s.dir, link);
});

after(async () => {
  await s?.stop();
  await destination?.stop();
});

const sendmail = (args: string[], input: string, opts: { link?: string; asNobody?: boolean }) =>
  posta(args, {
    bin: join(bin, 'sendmail'),
    cwd,
    input,
    asNobody: opts.asNobody,
    env: { POSTA_DIR: undefined, POSTA_CONFIG_LINK: opts.link },
  });

const headerOf = (m: ReceivedMessage) => {
  const text = m.data.toString();
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
};

test('as /usr/sbin/sendmail, run by nobody: the flags are sendmail flags, the folder is the service link, the user is recorded', async () => {
  const r = await sendmail(
    ['-t', '-i'],
    'From: cron@example.test\nTo: nobody-cron@dest.test\nSubject: from cron\n\nHi.\n',
    { link, asNobody: true },
  );
  assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  const m = await destination.rx.arrival(
    (x) => x.rcptTos.includes('nobody-cron@dest.test'),
    'cron',
  );
  assert.match(
    headerOf(m),
    new RegExp(
      `^Received: by mail\\.example\\.test \\(posta, from userid ${nobody} nobody\\)\\r\\n\\tid \\w+; `,
      'm',
    ),
  );
  const line = s.logs.find((l) => l.includes('nobody-cron@dest.test') && l.includes('"accepted"'));
  assert.ok(line, 'an accepted line');
  const { user, via } = JSON.parse(line) as { user: string; via: string };
  assert.deepEqual({ user, via }, { user: `uid=${nobody} (nobody)`, via: 'sendmail' });
});

test('as sendmail, run by root (cron) while the server runs as its own user: root is recorded', async () => {
  const r = await sendmail(['-t'], 'To: root-cron@dest.test\nSubject: root\n\nHi.\n', { link });
  assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  const m = await destination.rx.arrival((x) => x.rcptTos.includes('root-cron@dest.test'), 'root');
  assert.match(headerOf(m), /^Received: by mail\.example\.test \(posta, from userid 0 root\)\r\n/m);
});

test('as sendmail with no server running: the CLI queues it and names its own user', async () => {
  await s.stop();
  try {
    const r = await sendmail(['alone@dest.test'], 'Subject: alone\n\nx\n', { link });
    assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  } finally {
    await s.restart();
  }
  const m = await destination.rx.arrival((x) => x.rcptTos.includes('alone@dest.test'), 'alone');
  assert.match(headerOf(m), /^Received: by mail\.example\.test \(posta, from userid 0 root\)\r\n/m);
});

test('as sendmail with no service link and no ./posta: one sentence saying where it looked', async () => {
  const r = await sendmail(['x@dest.test'], 'Subject: x\n\nx\n', { link: join(cwd, 'none') });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `posta: There is no ${join(cwd, 'none/posta.toml')} (\`posta install-service\` links ${join(cwd, 'none')} to the config folder) nor ./posta/posta.toml; install the service, or pass --dir DIR.\n`,
  );
});

test('the real default: /etc/posta links to the config folder', async (t) => {
  const exists = await lstat('/etc/posta').then(
    () => true,
    () => false,
  );
  if (process.getuid?.() !== 0 || exists) {
    t.skip('needs root and a machine with no /etc/posta of its own');
    return;
  }
  await symlink(s.dir, '/etc/posta');
  try {
    const r = await sendmail(['-t'], 'To: etc@dest.test\nSubject: etc\n\nx\n', { asNobody: true });
    assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  } finally {
    await rm('/etc/posta');
  }
  const m = await destination.rx.arrival((x) => x.rcptTos.includes('etc@dest.test'), 'via /etc');
  assert.match(headerOf(m), new RegExp(`\\(posta, from userid ${nobody} nobody\\)`));
});

test('a client cannot claim a user: without a token of its own, or with a symlink to one, it is refused', async () => {
  // A root-owned empty file, as a token of root's would be; nobody links to it.
  const rootFile = join(cwd, 'root-token');
  await writeFile(rootFile, '');
  const socket = join(s.dir, 'data/sendmail.sock');
  const script = `
    const { symlinkSync } = require('node:fs');
    const { request } = require('node:http');
    const token = 'ab'.repeat(16);
    symlinkSync(${JSON.stringify(rootFile)}, ${JSON.stringify(join(s.dir, 'data/maildrop'))} + '/' + token);
    const post = (options) => new Promise((resolve) => {
      const req = request({ socketPath: ${JSON.stringify(socket)}, method: 'POST', path: '/sendmail' }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(res.statusCode + ' ' + text));
      });
      req.end(JSON.stringify(options) + '\\nSubject: forged\\n\\nx\\n');
    });
    (async () => {
      const recipients = ['forged@dest.test'];
      console.log(await post({ recipients, uid: 0, user: 'root' }));
      console.log(await post({ recipients, token }));
    })();
  `;
  const out = execFileSync(
    'setpriv',
    ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', script],
    { cwd },
  ).toString();
  const lines = out.trim().split('\n');
  assert.equal(lines.length, 2, out);
  for (const l of lines) {
    assert.match(l, /^400 .*The server could not tell which user runs posta sendmail: /);
  }
  assert.ok(!s.logs.some((l) => l.includes('forged@dest.test')));
});

test('install-service links the service folder for sendmail and prints the ln -s line, replacing nothing real', async () => {
  const { dir } = await initFolder('other.test');
  await shareConfig(dir); // install-service refuses a folder its user cannot reach
  const tmp = await tempDir();
  const at = join(tmp, 'etc-posta');
  const install = () =>
    posta(['install-service', '--user', 'nobody', '--unit-dir', tmp, '--dir', dir], {
      env: { POSTA_CONFIG_LINK: at },
    });
  const sbin = await lstat('/usr/sbin/sendmail').then(
    () => null,
    () => `ln -s ${POSTA} /usr/sbin/sendmail`,
  );
  for (let i = 0; i < 2; i++) {
    const r = await install(); // a second run finds its own link
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, i ? / is the config folder, / : / -> /);
    if (sbin) assert.ok(r.stdout.includes(`\n  ${sbin}\n`), r.stdout);
    assert.equal(await readlink(at), dir);
  }
  await rm(at);
  await mkdir(at);
  const r = await install();
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /exists and is not a link, so posta run as sendmail will not find /);
  assert.ok((await lstat(at)).isDirectory());
});
