/**
 * `posta init` and `posta dns` against independent peers: BIND's zone checker
 * loads the printed records, a DNS server on loopback serves them, and dkimpy's
 * dkimverify checks a message signed with each generated key through them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { posta, initFolder, POSTA, ROOT, tempDir } from '../helpers/posta.ts';
import { startDns, SOA } from '../helpers/dns.ts';
import { loadKeys } from '../../src/dkim/keys.ts';
import { signMessage } from '../../src/dkim/sign.ts';

const run = promisify(execFile);

test('init writes the config folder with private keys only the owner can read', async () => {
  const { dir, init } = await initFolder();
  assert.match(init.stdout, /Created .*posta\.toml \(hostname mail\.example\.test\)/);
  assert.match(init.stdout, /Next steps:/);
  const keys = await readdir(join(dir, 'domains/example.test/dkim'));
  assert.deepEqual(keys.map((k) => k.replace(/^\d{8}/, 'DATE')).sort(), [
    'DATEe.ed25519.key',
    'DATEr.rsa.key',
  ]);
  for (const k of keys) {
    assert.equal((await stat(join(dir, 'domains/example.test/dkim', k))).mode & 0o777, 0o600);
  }
  assert.match(await readFile(join(dir, '.gitignore'), 'utf8'), /data/);
  assert.match(
    await readFile(join(dir, 'posta.toml'), 'utf8'),
    /^hostname = "mail.example.test"$/m,
  );
});

test('a second init of the same domain changes nothing; another domain is added', async () => {
  const { dir } = await initFolder();
  const keyDir = join(dir, 'domains/example.test/dkim');
  const before = await readdir(keyDir);
  const again = await posta(['init', 'example.test', '--dir', dir]);
  assert.equal(again.code, 1);
  assert.match(
    again.stderr,
    /example\.test is already set up in .*; `posta dns example\.test` prints its records/,
  );
  assert.deepEqual(await readdir(keyDir), before);
  const other = await posta(['init', 'example.org', '--dir', dir]);
  assert.equal(other.code, 0, other.stderr);
  assert.doesNotMatch(other.stdout, /Created/);
  assert.deepEqual((await readdir(join(dir, 'domains'))).sort(), ['example.org', 'example.test']);
  const conflicting = await posta([
    'init',
    'example.net',
    '--hostname',
    'mx.other.test',
    '--dir',
    dir,
  ]);
  assert.equal(conflicting.code, 1);
  assert.match(conflicting.stderr, /already sets hostname = "mail.example.test"/);
  assert.deepEqual((await readdir(join(dir, 'domains'))).sort(), ['example.org', 'example.test']);
});

const HEADER =
  '# posta aliases: "local: target, target". A bare local part means this domain;\n' +
  '# "*: target" catches every other address. Edit by hand or with `posta alias`.\n';

test('init --forward sends postmaster@ and abuse@ of the new domain there, and never rewrites them', async () => {
  const dir = join(await tempDir(), 'posta');
  const r = await posta(['init', 'example.test', '--forward', 'me@Gmail.test', '--dir', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^Mail to postmaster@example\.test and abuse@example\.test is forwarded to me@gmail\.test\.$/m,
  );
  const file = join(dir, 'domains/example.test/aliases');
  assert.equal(
    await readFile(file, 'utf8'),
    `${HEADER}postmaster: me@gmail.test\nabuse: me@gmail.test\n`,
  );
  const list = await posta(['alias', 'list', '--dir', dir]);
  assert.equal(
    list.stdout,
    'postmaster@example.test: me@gmail.test\nabuse@example.test: me@gmail.test\n',
  );
  await writeFile(file, `${HEADER}postmaster: boss@elsewhere.test\n`);
  const again = await posta([
    'init',
    'example.test',
    '--forward',
    'other@gmail.test',
    '--dir',
    dir,
  ]);
  assert.equal(again.code, 1);
  assert.match(
    again.stderr,
    /already set up .*`posta alias add postmaster@example\.test other@gmail\.test`/,
  );
  assert.equal(await readFile(file, 'utf8'), `${HEADER}postmaster: boss@elsewhere.test\n`);
  for (const bad of ['nobody', 'me@example.org', '*@gmail.test']) {
    const u = await posta(['init', 'example.org', '--forward', bad, '--dir', dir]);
    assert.equal(u.code, 2, `${bad}: ${u.stderr}`);
    assert.match(u.stderr, /^posta: --forward/);
  }
});

test('init from a script (stdin open, not a terminal) asks nothing and says which alias to add', async () => {
  const dir = join(await tempDir(), 'posta');
  const child = spawn(POSTA, ['init', 'example.test', '--dir', dir], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, POSTA_DIR: '' },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  // stdin stays open: an init that waited for an answer would never exit.
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  child.stdin.end();
  assert.equal(code, 0, out);
  const hints = out.split('\n').filter((l) => l.includes('posta alias add postmaster@'));
  assert.deepEqual(hints, [
    `postmaster@example.test and abuse@example.test reach no one yet: run \`posta alias add postmaster@example.test ADDRESS --dir ${dir}\` (and the same for abuse@example.test).`,
  ]);
  assert.equal(await readFile(join(dir, 'domains/example.test/aliases'), 'utf8'), HEADER);
});

test('init on a terminal asks where postmaster@ and abuse@ go; a bad answer asks again, an empty one skips', async () => {
  const PROMPT = 'abuse@example.test to (empty: skip): ';
  for (const [answers, aliases] of [
    [['me@gmail.test'], `${HEADER}postmaster: me@gmail.test\nabuse: me@gmail.test\n`],
    [['garbage', 'me@gmail.test'], `${HEADER}postmaster: me@gmail.test\nabuse: me@gmail.test\n`],
    [[''], HEADER],
  ] as const) {
    const dir = join(await tempDir(), 'posta');
    const child = spawn(
      'script',
      ['-qfec', `${POSTA} init example.test --dir ${dir}`, '/dev/null'],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, POSTA_DIR: '' },
      },
    );
    let out = '';
    let asked = 0;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      // Each prompt gets the next answer.
      while (out.split(PROMPT).length - 1 > asked && asked < answers.length) {
        child.stdin.write(`${answers[asked++]}\r`);
      }
    });
    assert.equal(await exited, 0, out);
    assert.equal(asked, answers.length, out);
    if (answers.length > 1) assert.match(out, /"garbage" is not/, out);
    assert.equal(
      await readFile(join(dir, 'domains/example.test/aliases'), 'utf8'),
      aliases,
      `answers ${JSON.stringify(answers)}: ${out}`,
    );
  }
});

test('the printed records load into BIND and DKIM signatures of both keys verify through them', async (t) => {
  const { dir } = await initFolder();
  const out = await posta([
    'dns',
    'example.test',
    '--dir',
    dir,
    '--address',
    '192.0.2.25',
    '--address',
    '2001:db8::25',
  ]);
  assert.equal(out.code, 0, out.stderr);
  for (const want of [
    /^example\.test\.\t3600\tIN\tMX\t10 mail\.example\.test\.$/m,
    /^example\.test\.\t3600\tIN\tTXT\t"v=spf1 ip4:192\.0\.2\.25 ip6:2001:db8::25 -all"$/m,
    /^_dmarc\.example\.test\.\t3600\tIN\tTXT\t"v=DMARC1; p=quarantine; rua=mailto:postmaster@example\.test"$/m,
    /^_mta-sts\.example\.test\.\t3600\tIN\tTXT\t"v=STSv1; id=[0-9a-f]{20}"$/m,
    /^_smtp\._tls\.example\.test\.\t3600\tIN\tTXT\t"v=TLSRPTv1; rua=mailto:postmaster@example\.test"$/m,
    /^mail\.example\.test\.\t3600\tIN\tA\t192\.0\.2\.25$/m,
    /^mail\.example\.test\.\t3600\tIN\tAAAA\t2001:db8::25$/m,
    /^; 25\.2\.0\.192\.in-addr\.arpa\.\t3600\tIN\tPTR\tmail\.example\.test\.$/m,
    /^\d{8}r\._domainkey\.example\.test\.\t3600\tIN\tTXT\t"v=DKIM1; k=rsa; p=[^"]{200,}" "[^"]+"$/m,
    /^\d{8}e\._domainkey\.example\.test\.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="$/m,
  ]) {
    assert.match(out.stdout, want);
  }
  for (const line of out.stdout.split('\n')) {
    for (const s of line.matchAll(/"([^"]*)"/g)) assert.ok((s[1] ?? '').length <= 255);
  }

  const zone = `${SOA('example.test')}\nns 300 IN A 127.0.0.1\n${out.stdout}`;
  const zoneFile = join(await tempDir(), 'example.test.zone');
  await writeFile(zoneFile, zone);
  const checked = await run('named-checkzone', ['example.test', zoneFile]);
  assert.match(checked.stdout, /OK/);

  const server = await startDns(zone);
  t.after(() => server.stop());
  const keys = await loadKeys(join(dir, 'domains/example.test/dkim'));
  assert.equal(keys.length, 2);
  for (const key of keys) {
    const message = Buffer.from(
      'From: Test <i@example.test>\r\nTo: you@example.org\r\nSubject: key check\r\n' +
        'Date: Fri, 27 Nov 2026 12:00:00 +0000\r\nMessage-ID: <k@example.test>\r\n\r\n' +
        'Signed with one key.  Trailing space here:   \r\n\r\n',
    );
    const signed = Buffer.concat([
      Buffer.from(await signMessage(message, 'example.test', [key])),
      message,
    ]);
    const verify = await runWithInput(
      '/usr/bin/python3',
      [join(ROOT, 'test/peers/with_dns.py'), server.address, String(server.port), 'dkimverify'],
      signed,
    );
    assert.equal(
      verify.stdout.trim(),
      'signature ok',
      `${key.algorithm}: ${verify.stdout}${verify.stderr}`,
    );
    const tampered = Buffer.from(signed.toString().replace('key check', 'key check!'));
    const bad = await runWithInput(
      '/usr/bin/python3',
      [join(ROOT, 'test/peers/with_dns.py'), server.address, String(server.port), 'dkimverify'],
      tampered,
    );
    assert.equal(bad.code, 1, 'a changed Subject fails verification');
    // From, To, Subject, Date and Message-ID are oversigned: adding one breaks the signature.
    assert.match(signed.toString(), /h=[^;]*From:[^;]*From/);
    const added = Buffer.concat([Buffer.from('Subject: a second subject\r\n'), signed]);
    const addedRun = await runWithInput(
      '/usr/bin/python3',
      [join(ROOT, 'test/peers/with_dns.py'), server.address, String(server.port), 'dkimverify'],
      added,
    );
    assert.equal(addedRun.code, 1, 'an added Subject field fails verification');
  }
});

test('dns without addresses says how to get A/AAAA and PTR lines', async () => {
  const { dir } = await initFolder();
  const out = await posta(['dns', 'example.test', '--dir', dir]);
  assert.equal(out.code, 0);
  assert.match(out.stdout, /"v=spf1 mx -all"/);
  assert.match(
    out.stdout,
    /list the server's\n; public addresses in `addresses` in posta\.toml, or pass --address IP/,
  );
});

function runWithInput(cmd: string, args: string[], input: Buffer) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = execFile(cmd, args, (err, stdout, stderr) => {
      if (!err) return resolve({ code: 0, stdout, stderr });
      if (typeof err.code === 'number') return resolve({ code: err.code, stdout, stderr });
      reject(new Error(err.message));
    });
    child.stdin?.end(input);
  });
}
