import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfigText } from './load.ts';
import { configTemplate } from './template.ts';

const F = 'posta/posta.toml';

test('the template init writes parses back to its own values and defaults', () => {
  const c = parseConfigText(F, configTemplate({ hostname: 'mail.example.com' }));
  assert.equal(c.hostname, 'mail.example.com');
  assert.equal(c.data_dir, 'data');
  assert.deepEqual(c.listen.submission, ['0.0.0.0:587', '[::]:587']);
  assert.equal(c.tls, undefined);
});

test('a minimal file gets every default', () => {
  const c = parseConfigText(F, 'hostname = "mail.example.com"');
  assert.deepEqual(c.listen.smtp, ['0.0.0.0:25', '[::]:25']);
  assert.deepEqual(c.dns.servers, []);
});

test('the [delivery.destinations] example in the template works once uncommented', () => {
  const text = configTemplate({ hostname: 'mail.example.com' }).replace(
    /^# (\[delivery\.destinations\..*\]\n)# (.*\n)# (.*\n)/m,
    '$1$2$3',
  );
  assert.match(text, /^\[delivery\.destinations\."outlook\.com"\]$/m);
  const c = parseConfigText(F, text);
  assert.deepEqual(c.delivery.destinations, {
    'outlook.com': { connections: 2, messages_per_minute: 60 },
  });
  assert.equal(c.delivery.concurrency, 64, 'the keys of [delivery] stay in [delivery]');
  assert.equal(c.dns.servers.length, 0);
});

test('[delivery.destinations] by domain, in any case or with a final dot; written twice is an error', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-conf-'));
  const file = join(dir, 'posta.toml');
  const head = 'hostname = "mail.example.com"\n[tls]\ncert = "c.pem"\nkey = "k.pem"\n';
  try {
    await writeFile(file, `${head}[delivery.destinations."Outlook.COM."]\nconnections = 2\n`);
    const c = await loadConfig(dir);
    assert.deepEqual(c.delivery.destinations.get('outlook.com'), {
      connections: 2,
      messagesPerMinute: 0,
    });
    await writeFile(
      file,
      `${head}[delivery.destinations."outlook.com"]\nconnections = 2\n[delivery.destinations."OUTLOOK.com"]\nconnections = 7\n`,
    );
    await assert.rejects(loadConfig(dir), {
      message: `${file}: [delivery.destinations."outlook.com"] and [delivery.destinations."OUTLOOK.com"] are the same domain; keep one of them.`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const bad: [string, string, RegExp][] = [
  ['malformed TOML', 'hostname = "x', /not valid TOML at line 1/],
  ['missing hostname', 'data_dir = "d"', /hostname is required/],
  [
    'hostname not a domain',
    'hostname = "mail"',
    /hostname = "mail" is not a fully qualified domain/,
  ],
  [
    'unknown top-level key',
    'hostname = "a.b"\nhostnme = "x"',
    /unknown key "hostnme" in the top level; allowed keys there: hostname, data_dir/,
  ],
  [
    'unknown key in a section',
    'hostname = "a.b"\n[listen]\nsmpt = []',
    /unknown key "smpt" in \[listen\]; allowed keys there: smtp, submission/,
  ],
  [
    'bad endpoint',
    'hostname = "a.b"\n[listen]\nsmtp = ["0.0.0.0"]',
    /\[listen\] smtp\[0\] = "0.0.0.0" is not ADDRESS:PORT/,
  ],
  ['IPv6 without brackets', 'hostname = "a.b"\n[listen]\nsmtp = [":::25"]', /is not ADDRESS:PORT/],
  [
    'the example fits the key',
    'hostname = "a.b"\n[dns]\nservers = ["dns.google"]',
    /\[dns\] servers\[0\] = "dns.google" is not ADDRESS:PORT; write "127\.0\.0\.1:53" for IPv4/,
  ],
  [
    'a number too small',
    'hostname = "a.b"\n[delivery]\nfirst_retry = -3',
    /\[delivery\] first_retry = -3 is too small; it must be at least 1\.$/,
  ],
  [
    'a value not in the list',
    'hostname = "a.b"\n[delivery]\nip_family = "ipv6"',
    /ip_family = "ipv6" is not allowed; it must be one of "prefer-ipv6", "prefer-ipv4", "ipv4-only", "ipv6-only"\.$/,
  ],
  [
    'wrong type',
    'hostname = "a.b"\n[listen]\nsmtp = "0.0.0.0:25"',
    /\[listen\] smtp = "0.0.0.0:25" has the wrong type; it must be a list/,
  ],
  [
    'bad address',
    'hostname = "a.b"\naddresses = ["1.2.3"]',
    /addresses\[0\] = "1.2.3" is not an IPv4 or IPv6 address/,
  ],
  ['tls without key', 'hostname = "a.b"\n[tls]\ncert = "c.pem"', /\[tls\] key is required/],
  [
    'a destination that is not a domain',
    'hostname = "a.b"\n[delivery.destinations.outlook.com]\nconnections = 2',
    /\[delivery\.destinations\."outlook"\]: "outlook" is not a fully qualified domain name like mail\.example\.com; write the domain in quotes, as in \[delivery\.destinations\."outlook\.com"\]\.$/,
  ],
  [
    'a misspelt key in a destination',
    'hostname = "a.b"\n[delivery.destinations."outlook.com"]\nconection = 2',
    /unknown key "conection" in \[delivery\.destinations\."outlook\.com"\]; allowed keys there: connections, messages_per_minute\.$/,
  ],
  [
    'a warm-up for a name that is no domain or address',
    'hostname = "a.b"\n[warmup.example.com]\nstart = 2026-12-01',
    /\[warmup\."example"\]: "example" is not a sending domain like example\.com or an address like news@example\.com; write the sender in quotes, as in \[warmup\."example\.com"\]\.$/,
  ],
  [
    'a warm-up start with a time',
    'hostname = "a.b"\n[warmup."example.com"]\nstart = 2026-12-01T10:00:00Z',
    /\[warmup\."example\.com"\] start = "2026-12-01T10:00:00\.000Z" is not a date; write a TOML date without a time, like 2026-12-01\.$/,
  ],
  [
    'a warm-up start that is no day',
    'hostname = "a.b"\n[warmup."example.com"]\nstart = "2026-02-30"',
    /\[warmup\."example\.com"\] start = "2026-02-30" is not a date/,
  ],
  [
    'a warm-up without a start',
    'hostname = "a.b"\n[warmup."example.com"]\nschedule = [1, 2]',
    /\[warmup\."example\.com"\] start is required; add it to the file\.$/,
  ],
  [
    'a warm-up schedule that goes down',
    'hostname = "a.b"\n[warmup."example.com"]\nstart = 2026-12-01\nschedule = [10, 5]',
    /\[warmup\."example\.com"\] schedule = \[10,5\] goes down; each day may allow as many messages as the day before or more\.$/,
  ],
  [
    'a warm-up day of no messages',
    'hostname = "a.b"\n[warmup."example.com"]\nstart = 2026-12-01\nschedule = [0, 5]',
    /\[warmup\."example\.com"\] schedule\[0\] = 0 is too small; it must be at least 1\.$/,
  ],
  [
    'a misspelt key in a warm-up',
    'hostname = "a.b"\n[warmup."example.com"]\nstart = 2026-12-01\nshedule = [1]',
    /unknown key "shedule" in \[warmup\."example\.com"\]; allowed keys there: start, schedule\.$/,
  ],
  [
    'a destination limit too small',
    'hostname = "a.b"\n[delivery.destinations."outlook.com"]\nconnections = 0',
    /\[delivery\.destinations\."outlook\.com"\] connections = 0 is too small; it must be at least 1\.$/,
  ],
];
for (const [name, text, want] of bad) {
  test(`config error: ${name}`, () => {
    assert.throws(
      () => parseConfigText(F, text),
      (err: Error) => {
        assert.match(err.message, want);
        assert.ok(err.message.startsWith(F), 'names the file');
        return true;
      },
    );
  });
}

for (const [name, listen, want] of [
  [
    'one address under two keys',
    'smtp = ["127.0.0.1:25"]\nsubmission = ["127.0.0.1:25"]',
    /\[listen\] smtp and \[listen\] submission both list "127\.0\.0\.1:25"; each address and port can be listened on once\.$/,
  ],
  [
    'one address twice under one key',
    'smtp = ["[::1]:25", "[::1]:25"]',
    /\[listen\] smtp and \[listen\] smtp both list "\[::1\]:25"/,
  ],
  [
    'one address spelt two ways',
    'smtp = ["[::0]:25"]\nsubmission = ["[0:0::1]:25"]',
    /\[listen\] smtp "\[::\]:25" already takes every address on port 25, so \[listen\] submission "\[::1\]:25"/,
  ],
  [
    'an address beside the wildcard of its family',
    'smtp = ["0.0.0.0:25"]\nsubmission = ["127.0.0.1:25"]',
    /\[listen\] smtp "0\.0\.0\.0:25" already takes every address on port 25, so \[listen\] submission "127\.0\.0\.1:25" cannot be had too; drop one of them\.$/,
  ],
  [
    'plain http on every address',
    'http = ["0.0.0.0:8025"]',
    /\[listen\] http "0\.0\.0\.0:8025" is not on loopback, and plain HTTP would carry the dashboard's logins and the APIs' keys unencrypted over the network; listen on 127\.0\.0\.1 or \[::1\] and use \[listen\] https \(or ssh -L\) from other hosts\.$/,
  ],
  [
    'plain http on a public address',
    'http = ["192.0.2.7:80"]',
    /\[listen\] http "192\.0\.2\.7:80" is not on loopback/,
  ],
] as const) {
  test(`config error: ${name}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'posta-load-'));
    await writeFile(join(dir, 'posta.toml'), `hostname = "a.b"\n[listen]\n${listen}\n`);
    await assert.rejects(loadConfig(dir), (err: Error) => {
      assert.match(err.message, want);
      return true;
    });
    await rm(dir, { recursive: true });
  });
}

test('[dashboard] https is off by default; on, it still refuses plain http off loopback', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-load-'));
  await writeFile(join(dir, 'posta.toml'), 'hostname = "a.b"\n');
  assert.equal((await loadConfig(dir)).dashboard.https, false);
  await writeFile(join(dir, 'posta.toml'), 'hostname = "a.b"\n[dashboard]\nhttps = true\n');
  assert.equal((await loadConfig(dir)).dashboard.https, true);
  await writeFile(
    join(dir, 'posta.toml'),
    'hostname = "a.b"\n[listen]\nhttp = ["0.0.0.0:8025"]\n[dashboard]\nhttps = true\n',
  );
  await assert.rejects(loadConfig(dir), /\[listen\] http "0\.0\.0\.0:8025" is not on loopback/);
  await rm(dir, { recursive: true });
});

test('plain http on any loopback address is fine', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-load-'));
  await writeFile(
    join(dir, 'posta.toml'),
    'hostname = "a.b"\n[listen]\nhttp = ["127.3.4.5:8025", "[::1]:8025"]\n',
  );
  assert.equal((await loadConfig(dir)).listen.http.length, 2);
  await rm(dir, { recursive: true });
});

test('the IPv4 and IPv6 wildcards of one port go together (the default)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-load-'));
  await writeFile(join(dir, 'posta.toml'), 'hostname = "a.b"\n');
  const c = await loadConfig(dir);
  assert.deepEqual(c.listen.smtp, [
    { host: '0.0.0.0', port: 25 },
    { host: '::', port: 25 },
  ]);
  await rm(dir, { recursive: true });
});

for (const [name, toml, want] of [
  [
    'one-click unsubscribe without the https listener',
    '[listen]\nhttps = []\n[bulk]\nunsubscribe_keys = ["AKPSABCDEFGHIJKLMNOP"]',
    /\[bulk\] unsubscribe_keys asks for one-click unsubscribe, whose https URL needs the https listener, but \[listen\] https is empty/,
  ],
  [
    'one-click unsubscribe for a domain that is not ours',
    '[bulk]\nunsubscribe_domains = ["other.test"]',
    /\[bulk\] unsubscribe_domains names "other\.test", which is not a domain of this server/,
  ],
  [
    'a key id that is not one',
    '[bulk]\nunsubscribe_keys = ["nope"]',
    /\[bulk\] unsubscribe_keys\[0\] = "nope" is not an access key id/,
  ],
] as const) {
  test(`config error: ${name}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'posta-load-'));
    await writeFile(join(dir, 'posta.toml'), `hostname = "a.b"\n${toml}\n`);
    await assert.rejects(loadConfig(dir), (err: Error) => {
      assert.match(err.message, want);
      return true;
    });
    await rm(dir, { recursive: true });
  });
}

test('[warmup] by sender: a domain or an address, one form whatever the case; the default schedule; one table per sender', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-conf-'));
  try {
    const file = join(dir, 'posta.toml');
    const head = 'hostname = "mail.example.com"\n';
    await writeFile(
      file,
      `${head}[warmup."Example.COM"]\nstart = 2026-12-01\n[warmup."News@Example.com"]\nstart = "2026-12-05"\nschedule = [5, 5, 10]\n`,
    );
    const c = await loadConfig(dir);
    assert.deepEqual(c.warmup, [
      {
        sender: 'example.com',
        start: '2026-12-01',
        schedule: [50, 100, 200, 400, 800, 1500, 3000, 6000, 12000, 25000, 50000, 100000],
      },
      { sender: 'news@example.com', start: '2026-12-05', schedule: [5, 5, 10] },
    ]);
    assert.deepEqual((await loadConfig(await emptyFolder(dir))).warmup, [], 'none by default');
    await writeFile(
      file,
      `${head}[warmup."example.com"]\nstart = 2026-12-01\n[warmup."EXAMPLE.com"]\nstart = 2026-12-02\n`,
    );
    await assert.rejects(loadConfig(dir), {
      message: `${file}: [warmup."example.com"] and [warmup."EXAMPLE.com"] are the same sender; keep one of them.`,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

async function emptyFolder(parent: string): Promise<string> {
  const dir = join(parent, 'plain');
  await mkdir(dir);
  await writeFile(join(dir, 'posta.toml'), 'hostname = "mail.example.com"\n');
  return dir;
}

test('config error: webhooks with the queue on PostgreSQL (they would send nothing)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-load-'));
  await writeFile(
    join(dir, 'posta.toml'),
    [
      'hostname = "a.b"',
      '[storage]',
      'url = "postgres://posta@127.0.0.1:5432/posta"',
      '[webhooks.app]',
      'url = "https://app.example.com/events"',
    ].join('\n'),
  );
  await assert.rejects(loadConfig(dir), (err: Error) => {
    assert.match(
      err.message,
      /\[webhooks\.app\] cannot be used with \[storage\] url yet: on PostgreSQL the events are in the database, which webhooks do not read yet/,
    );
    return true;
  });
  await rm(dir, { recursive: true });
});
