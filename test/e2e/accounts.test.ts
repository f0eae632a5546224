/** Accounts, aliases and bad input through the real `posta` command. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, unlink } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { posta, initFolder, tempDir } from '../helpers/posta.ts';

const run = promisify(execFile);

test('user add, authenticate, passwd, list, del', async () => {
  const { dir } = await initFolder();
  const add = await posta([
    'user',
    'add',
    'I@Example.TEST',
    '--password',
    'hunter2-long',
    '--dir',
    dir,
  ]);
  assert.equal(add.code, 0, add.stderr);
  const auth = (addr: string, pw: string) =>
    posta(['authenticate', addr, '--password', pw, '--dir', dir]);
  assert.equal((await auth('i@example.test', 'hunter2-long')).code, 0);
  assert.equal((await auth('I@EXAMPLE.test', 'hunter2-long')).code, 0, 'addresses are normalised');
  const wrong = await auth('i@example.test', 'hunter3');
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /Authentication failed for i@example.test/);
  assert.equal((await auth('nobody@example.test', 'hunter2-long')).code, 1);

  // password from standard input, as scripts give it
  const pw = await posta(['user', 'passwd', 'i@example.test', '--dir', dir], {
    input: 'from-stdin-pw\n',
  });
  assert.equal(pw.code, 0, pw.stderr);
  assert.equal((await auth('i@example.test', 'hunter2-long')).code, 1);
  assert.equal((await auth('i@example.test', 'from-stdin-pw')).code, 0);

  await posta([
    'user',
    'add',
    'sales@example.test',
    '--password',
    'password-two',
    '--send-as-domain',
    '--dir',
    dir,
  ]);
  const list = await posta(['user', 'list', '--dir', dir]);
  assert.equal(list.stdout, 'i@example.test\nsales@example.test\tsend-as=domain\n');

  const dup = await posta([
    ...['user', 'add', 'i@example.test', '--password', 'long enough', '--dir', dir],
  ]);
  assert.equal(dup.code, 1);
  assert.match(
    dup.stderr,
    /i@example\.test already exists; change its password with `posta user passwd/,
  );

  assert.equal((await posta(['user', 'del', 'sales@example.test', '--dir', dir])).code, 0);
  const gone = await posta(['user', 'del', 'sales@example.test', '--dir', dir]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /There is no account sales@example\.test/);

  // no password in plain text anywhere in the folder
  for (const secret of ['hunter2-long', 'from-stdin-pw', 'password-two']) {
    const grep = await run('grep', ['-r', '-l', secret, dir]).catch((e: { code: number }) => e);
    assert.equal((grep as { code: number }).code, 1, `${secret} is not on disk`);
  }
  assert.match(
    await readFile(join(dir, 'domains/example.test/users'), 'utf8'),
    /^i \$argon2id\$v=19\$m=19456,t=2,p=1\$/m,
  );
});

test('concurrent user adds all land in the file', async () => {
  const { dir } = await initFolder();
  const names = ['a', 'b', 'c', 'd', 'e', 'f'];
  const runs = await Promise.all(
    names.map((n) =>
      posta(['user', 'add', `${n}@example.test`, '--password', `password-${n}`, '--dir', dir]),
    ),
  );
  for (const r of runs) assert.equal(r.code, 0, r.stderr);
  const list = await posta(['user', 'list', 'example.test', '--dir', dir]);
  assert.deepEqual(
    list.stdout.trim().split('\n').sort(),
    names.map((n) => `${n}@example.test`),
  );
});

test('aliases: add, list and del keep hand-written comments', async () => {
  const { dir } = await initFolder();
  const file = join(dir, 'domains/example.test/aliases');
  await writeFile(file, '# mine\nsales: alice\n');
  assert.equal(
    (await posta(['alias', 'add', '*@example.test', 'me@gmail.example', '--dir', dir])).code,
    0,
  );
  assert.equal((await posta(['alias', 'add', 'sales@example.test', 'bob', '--dir', dir])).code, 0);
  const list = await posta(['alias', 'list', '--dir', dir]);
  assert.equal(
    list.stdout,
    'sales@example.test: alice@example.test, bob@example.test\n*@example.test: me@gmail.example\n',
  );
  assert.equal(
    (await posta(['alias', 'del', 'sales@example.test', 'alice', '--dir', dir])).code,
    0,
  );
  assert.equal(
    await readFile(file, 'utf8'),
    '# mine\nsales: bob@example.test\n*: me@gmail.example\n',
  );
  const none = await posta(['alias', 'del', 'nope@example.test', '--dir', dir]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /There is no alias nope@example\.test/);
});

const usage: [string, string[], number, RegExp][] = [
  ['no command', [], 2, /Usage: posta COMMAND/],
  ['unknown command', ['fly'], 2, /"fly" is not a posta command; `posta --help` lists them/],
  [
    'unknown flag',
    ['dns', 'example.test', '--colour'],
    2,
    /^posta: Unknown option --colour; see `posta dns --help`\.\n$/,
  ],
  ['missing argument', ['init'], 2, /DOMAIN is missing; see `posta init --help`/],
  ['not a domain', ['init', 'localhost'], 2, /"localhost" is not a mail domain/],
  [
    'hostname not a domain',
    ['init', 'example.test', '--hostname', 'mail_x'],
    2,
    /not a mail domain|not a valid domain/,
  ],
  [
    'address without @',
    ['user', 'add', 'nobody.example.test', '--password', 'x'],
    1,
    /"nobody\.example\.test" is not an address: it has no @/,
  ],
  [
    'unknown domain',
    ['user', 'add', 'i@other.test', '--password', 'x'],
    1,
    /other\.test is not a domain of the posta config in .*; add it with `posta init other\.test/,
  ],
  [
    'a short password',
    ['user', 'add', 'new@example.test', '--password', 'hunter2'],
    1,
    /A password needs at least 8 characters \(this one has 7\)/,
  ],
  [
    'unknown user verb',
    ['user', 'rm', 'i@example.test'],
    2,
    /"rm" is not a user command; use add, del, list or passwd/,
  ],
  ['doctor for a foreign domain', ['doctor', 'other.test'], 1, /other\.test .*posta init/],
  [
    'an alias to itself',
    ['alias', 'add', 'sales@example.test', 'bob', 'Sales'],
    1,
    /^posta: sales@example\.test points at itself; name the addresses it forwards to\.\n$/,
  ],
  [
    'an alias to a wildcard',
    ['alias', 'add', '*@example.test', '*@gmail.com'],
    1,
    /^posta: "\*@gmail\.com" is a wildcard; a target is one address/,
  ],
];
for (const [name, args, code, want] of usage) {
  test(`bad input: ${name} -> exit ${code} and one clear sentence`, async () => {
    const { dir } = await initFolder();
    const r = await posta([...args, ...(args.length ? ['--dir', dir] : [])]);
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr + r.stdout, want);
  });
}

test('bad input: a missing config folder names posta init', async () => {
  const r = await posta(['dns', 'example.test', '--dir', join(await tempDir(), 'nowhere')]);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /There is no .*posta\.toml; create the config folder with `posta init DOMAIN --hostname HOST/,
  );
});

test('bad input: malformed and misspelt config are named with file and key', async () => {
  const { dir } = await initFolder();
  const file = join(dir, 'posta.toml');
  await writeFile(file, 'hostname = "mail.example.test"\n[listen]\nsmtp = ["0.0.0.0"]\n');
  const r = await posta(['dns', 'example.test', '--dir', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /posta\.toml: \[listen\] smtp\[0\] = "0\.0\.0\.0" is not ADDRESS:PORT/);
  await writeFile(file, 'hostname = "mail.example.test\n');
  assert.match(
    (await posta(['dns', 'example.test', '--dir', dir])).stderr,
    /is not valid TOML at line 1/,
  );
});

test('bad input: a missing or broken DKIM key file is named', async () => {
  const { dir } = await initFolder();
  const keyDir = join(dir, 'domains/example.test/dkim');
  const [{ readdir }] = [await import('node:fs/promises')];
  const [ed] = (await readdir(keyDir)).filter((f) => f.endsWith('.ed25519.key'));
  await writeFile(join(keyDir, ed ?? ''), 'not a key');
  const r = await posta(['dns', 'example.test', '--dir', dir]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /The DKIM key .*\.ed25519\.key cannot be used/);
  await unlink(join(keyDir, ed ?? ''));
  assert.equal((await posta(['dns', 'example.test', '--dir', dir])).code, 0);
});

test('POSTA_DIR selects the folder, and every command has --help', async () => {
  const { dir } = await initFolder();
  const r = await posta(['user', 'list'], { env: { POSTA_DIR: dir } });
  assert.equal(r.code, 0, r.stderr);
  for (const cmd of [
    'init',
    'serve',
    'dev',
    'user',
    'authenticate',
    'alias',
    'dns',
    'doctor',
    'queue',
    'send',
    'sendmail',
    'status',
  ]) {
    const h = await posta([cmd, '--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, new RegExp(`^Usage: posta ${cmd}`));
  }
});

test('listing accounts or aliases of a folder that does not exist says how to make one', async () => {
  const missing = join(await tempDir(), 'nowhere');
  for (const args of [
    ['user', 'list'],
    ['alias', 'list'],
    ['user', 'del', 'a@example.test'],
  ]) {
    const r = await posta([...args, '--dir', missing]);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(
      r.stderr,
      /^posta: There is no .*nowhere\/posta\.toml; create the config folder with `posta init/,
    );
  }
});

test('--dir DIR or --dir=DIR before the command selects the folder', async () => {
  const { dir } = await initFolder();
  await posta(['user', 'add', 'i@example.test', '--password', 'long enough', '--dir', dir]);
  for (const global of [['--dir', dir], [`--dir=${dir}`]]) {
    const r = await posta([...global, 'user', 'list']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'i@example.test\n');
  }
  const after = await posta(['--dir', '/nowhere', 'user', 'list', '--dir', dir]);
  assert.equal(after.stdout, 'i@example.test\n', 'a --dir after the command wins');
  const twice = await posta(['--dir', '/nowhere', '--dir', dir, 'user', 'list']);
  assert.equal(twice.stdout, 'i@example.test\n', 'the later of two wins');
  for (const bad of [['--dir'], ['--dir=', 'user', 'list'], ['user', 'list', '--dir=']]) {
    const r = await posta(bad);
    assert.equal(r.code, 2, bad.join(' '));
    assert.match(r.stderr, /^posta: --dir needs a folder[:;] .*\n$/, bad.join(' '));
  }
});
