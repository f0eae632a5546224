/**
 * Operating posta: Prometheus metrics on the http listener, read with the
 * prometheus_client text-format parser, move when mail flows; `posta status`
 * asks the running server over its control socket; `posta install-service`
 * writes a unit that systemd-analyze accepts; logs hold no passwords, and
 * are readable lines on a terminal; a broken hand edit of the config folder
 * is reported once and changes nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify, stripVTControlCharacters } from 'node:util';
import { POSTA, initFolder, posta, tempDir } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type Receiver } from '../helpers/receiver.ts';
import { RawSmtp, submit } from '../helpers/smtp.ts';
import { setTimeout as sleep } from 'node:timers/promises';

const run = promisify(execFile);

let mx: Awaited<ReturnType<typeof startMxFor>>;
let rx: Receiver;
let s: TestServer;

before(async () => {
  mx = await startMxFor('dest.test');
  rx = mx.rx;
  s = await startServer({ dns: mx.dns.endpoint, http: true });
});

after(async () => {
  await s?.stop();
  await mx?.stop();
});

/** Scrape /metrics and parse it with prometheus_client: {"name{labels}": value}. */
async function scrape(): Promise<Record<string, number>> {
  const res = await fetch(`http://${s.host}:${s.ports.http}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const dir = await tempDir('posta-metrics-');
  const file = join(dir, 'metrics.txt');
  await writeFile(file, await res.text());
  const parsed = await run('/usr/bin/python3', [
    '-c',
    [
      'import json, sys',
      'from prometheus_client.parser import text_string_to_metric_families',
      'out = {}',
      'for fam in text_string_to_metric_families(open(sys.argv[1]).read()):',
      '    for smp in fam.samples:',
      '        labels = ",".join(f"{k}={v}" for k, v in sorted(smp.labels.items()))',
      // NaN is valid in the text format (an event-loop lag gauge with no sample yet),
      // not in JSON: it comes across as null.
      '        out[f"{smp.name}{{{labels}}}"] = None if smp.value != smp.value else smp.value',
      'print(json.dumps(out))',
    ].join('\n'),
    file,
  ]);
  return JSON.parse(parsed.stdout) as Record<string, number>;
}

test('/metrics parses as Prometheus text and its counters move when mail flows', async () => {
  const before = await scrape();
  for (const name of [
    'posta_queue_messages{}',
    'posta_queue_oldest_seconds{}',
    'posta_certificate_expiry_timestamp_seconds{}',
    'posta_auth_failures_total{}',
  ]) {
    assert.ok(name in before, `${name} is exported`);
  }
  assert.ok((before['posta_certificate_expiry_timestamp_seconds{}'] ?? 0) > Date.now() / 1000);
  await submit(s, 'metrics@dest.test', 'metrics', 'x');
  await rx.waitFor(1);
  let after = await scrape();
  for (
    let i = 0;
    i < 100 && !after['posta_deliveries_total{domain_class=other,outcome=delivered}'];
    i++
  ) {
    await new Promise((r) => setTimeout(r, 100));
    after = await scrape();
  }
  const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
  assert.equal(delta('posta_messages_accepted_total{source=submission}'), 1);
  assert.equal(delta('posta_deliveries_total{domain_class=other,outcome=delivered}'), 1);
  assert.ok(delta('posta_connections_total{listener=submission}') >= 1);
  assert.equal(delta('posta_delivery_latency_seconds_count{domain_class=other}'), 1);
});

test('/ on the http listener is the dashboard: a login page that says how to get in', async () => {
  const res = await fetch(`http://${s.host}:${s.ports.http}/`, { redirect: 'manual' });
  assert.equal(res.status, 303);
  assert.equal(res.headers.get('location'), '/login');
  const login = await fetch(`http://${s.host}:${s.ports.http}/login`);
  assert.equal(login.status, 200);
  assert.match(
    (await login.text()).replace(/\s+/g, ' '),
    /No admin password is set\. On the server, run <code>posta admin password<\/code>, or <code>posta admin link<\/code>/,
  );
  // The posta.toml that init writes says where the dashboard is and how to log in.
  const fresh = await initFolder('example.org');
  const written = await readFile(join(fresh.dir, 'posta.toml'), 'utf8');
  assert.match(
    written,
    /^# HTTP: the SES APIs for applications on this machine, Prometheus \/metrics and \/healthz, and the dashboard at \/ \(loopback only; log in with `posta admin password` or `posta admin link`\)\.$/m,
  );
});

test('posta status reports the running server; without one it says so', async () => {
  const r = await posta(['status', '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout) as {
    version: string;
    pid: number;
    listeners: { kind: string; address: string }[];
    queue: { messages: number };
    lastHour: Record<string, number>;
    certificate: { names: string[]; daysLeft: number };
    dkim: Record<string, string[]>;
    errors: unknown[];
  };
  assert.match(st.version, /^\d+\.\d+\.\d+/);
  assert.equal(st.pid, s.child.pid);
  assert.ok(
    st.listeners.some(
      (l) => l.kind === 'submission' && l.address === `${s.host}:${s.ports.submission}`,
    ),
  );
  assert.ok((st.lastHour.delivered ?? 0) >= 1, JSON.stringify(st.lastHour));
  assert.deepEqual(st.certificate.names, ['mail.example.test']);
  assert.equal(st.dkim['example.test']?.length, 2);

  const text = await posta(['status', '--dir', s.dir]);
  assert.match(text.stdout, /^posta \d+\.\d+\.\d+, pid \d+, up /);
  assert.match(text.stdout, /^last hour\s+\d+ delivered/m);

  const stopped = await startServer();
  await stopped.stop();
  const none = await posta(['status', '--dir', stopped.dir]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /No posta server is running for .*; start it with `posta serve/);
});

test('logs are JSON lines with ids and never hold the password', () => {
  const lines = s.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(lines.length > 0);
  for (const l of lines) {
    if (['accepted', 'delivered', 'deferred', 'bounced'].includes(String(l.msg))) {
      assert.ok(l.qid, `${String(l.msg)} line has a queue id`);
    }
  }
  assert.ok(!s.logs.some((l) => l.includes(s.password)), 'no password in the logs');
});

test('on a terminal the log is one readable line per event, not JSON', async () => {
  const t = await startServer();
  await t.stop();
  // script(1) gives posta serve a pseudo-terminal as stdout.
  const child = spawn('script', ['-qfec', `${POSTA} serve --dir ${t.dir}`, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 300 && !out.includes('ready'); i++) await sleep(100);
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  const lines = stripVTControlCharacters(out).split(/\r?\n/).filter(Boolean);
  assert.ok(
    lines.some((l) => /^\[\d\d:\d\d:\d\d\] INFO: ready$/.test(l)),
    `a "ready" line: ${out}`,
  );
  const listening = lines.find((l) => l.includes('INFO: listening'));
  assert.match(listening ?? '', /"kind":"smtp","address":"127\.[\d.]+:\d+"/);
  assert.ok(!lines.some((l) => l.startsWith('{')), 'no JSON lines');
});

/** The reply to RCPT TO:<to> on port 25. */
async function rcpt(to: string): Promise<string> {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    await c.reply();
    await c.cmd('EHLO probe.test');
    await c.cmd('MAIL FROM:<someone@origin.test>');
    return (await c.cmd(`RCPT TO:<${to}>`)).raw;
  } finally {
    c.close();
  }
}

test('a broken edit of an aliases file is logged once and the previous aliases stay', async () => {
  await s.reload(() =>
    posta(['alias', 'add', 'sales@example.test', 'me@dest.test', '--dir', s.dir]),
  );
  assert.match(await rcpt('sales@example.test'), /^250 /);
  const file = join(s.dir, 'domains/example.test/aliases');
  const good = await readFile(file, 'utf8');
  const from = s.logs.length;
  await appendFile(file, 'support me@dest.test\n');
  const failures = async () => (await s.logged(from, 'config folder reload failed')).length;
  assert.equal(await failures(), 1);
  assert.match(
    s.logs.slice(from).join('\n'),
    /aliases line \d+: \\"support me@dest\.test\\" has no colon/,
  );
  await sleep(4500); // two more rounds of checking the folder
  assert.equal(await failures(), 1, 'one error per broken edit, not one per check');
  assert.match(await rcpt('sales@example.test'), /^250 /, 'the old aliases are still in force');
  await s.reload(() => writeFile(file, `${good}support: me@dest.test\n`));
  assert.match(await rcpt('support@example.test'), /^250 /, 'the repaired file is read');
});

test('a hand-written alias to itself or to a wildcard is logged once; mail to it is refused', async () => {
  const file = join(s.dir, 'domains/example.test/aliases');
  const good = await readFile(file, 'utf8');
  const cases: [string, RegExp][] = [
    ['loop: me@dest.test, loop\n', /aliases line \d+: loop@example\.test points at itself/],
    ['*: *@gmail.com\n', /aliases line \d+: \\"\*@gmail\.com\\" is a wildcard/],
  ];
  for (const [line, want] of cases) {
    const from = s.logs.length;
    await appendFile(file, line);
    const failures = await s.logged(from, 'reload failed');
    assert.equal(failures.length, 1, line);
    assert.match(failures.join('\n'), want);
    assert.match(await rcpt('loop@example.test'), /^550 /, 'the file is not in force');
    await writeFile(file, good);
  }
});

test('an edit of posta.toml is checked and logged: broken, or valid and needing a restart', async () => {
  const file = join(s.dir, 'posta.toml');
  const good = await readFile(file, 'utf8');
  const cases: [string, RegExp][] = [
    [
      `${good}\n[limits]\nmessage_size = "big"\n`,
      /"level":50.*\[limits\] message_size = .*"msg":"posta\.toml changed and is broken/,
    ],
    [
      `${good}\n# a comment\n`,
      /"level":40.*"msg":"posta\.toml changed; restart posta to apply it"/,
    ],
  ];
  try {
    for (const [text, want] of cases) {
      const from = s.logs.length;
      await writeFile(file, text);
      const said = await s.logged(from, 'posta.toml changed');
      assert.equal(said.length, 1, text);
      assert.match(said[0] ?? '', want);
    }
  } finally {
    await writeFile(file, good);
  }
});

test('install-service writes a unit systemd-analyze accepts', async () => {
  const r = await posta(['install-service', '--print', '--user', 'daemon', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^User=daemon$/m);
  assert.match(r.stdout, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
  assert.match(r.stdout, new RegExp(`^ExecStart=.*/bin/posta serve --dir ${s.dir}$`, 'm'));
  assert.match(r.stdout, new RegExp(`^ReadWritePaths=${s.dir}/data$`, 'm'));
  assert.match(
    r.stdout,
    new RegExp(`^Environment=NODE_COMPILE_CACHE=${s.dir}/data/compile-cache$`, 'm'),
  );
  const unit = join(await tempDir('posta-unit-'), 'posta.service');
  await writeFile(unit, r.stdout);
  const verify = await run('systemd-analyze', ['verify', unit]).catch(
    (err: { code: number; stderr: string }) => ({ stdout: '', stderr: err.stderr, code: err.code }),
  );
  assert.ok(!('code' in verify), `systemd-analyze verify: ${verify.stderr}`);
  const root = await posta(['install-service', '--print', '--user', 'root', '--dir', s.dir]);
  assert.equal(root.code, 1);
  assert.match(root.stderr, /should not run as root/);
});
