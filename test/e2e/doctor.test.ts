/**
 * `posta doctor` against a real DNS server on loopback and a real `posta
 * serve`: a zone built from `posta dns` (plus the hostname's A and the PTR of
 * the server's 127.x.y.z address) passes every check; each broken variant of
 * it, one per check, fails exactly that check with a fix and exit 1. The
 * MTA-STS policy is fetched from posta's own https listener on HOST:443 with a
 * certificate from a test CA that the doctor process trusts through
 * NODE_EXTRA_CA_CERTS. Outbound port 25 is probed on loopback (--probe), and
 * gmail.com does not exist in the test DNS: nothing leaves the machine.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { copyFile, readFile, utimes, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { posta, tempDir, type Run } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { freePort, randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { testCa } from '../helpers/certs.ts';
import { dkimTxt } from '../../src/dkim/keys.ts';
import { quoteTxt, reverseName } from '../../src/dnsrecords/records.ts';

interface Check {
  id: string;
  status: 'pass' | 'fail' | 'warn';
  title: string;
  detail: string;
  fix?: string;
}
interface DoctorJson {
  domain: string;
  checks: Check[];
  ok: boolean;
}

const ALL_IDS = [
  'mx',
  'address',
  'ptr',
  'spf',
  'spf-helo',
  'dkim',
  'dmarc',
  'mta-sts',
  'tls-rpt',
  'postmaster',
  'certificate',
  'listeners',
  'outbound-25',
  'dnsbl',
];

let dns: DnsServer;
let s: TestServer;
let policyHost: Server;
/** Stands in for a remote MX on port 25: accepts and greets. */
let probe: TcpServer;
let probeAt: string;
let ptrLine: string;
let host: string;
let base: string;
let caFile: string;
let certFile: string;
let shortCert: string;
let toml: string;
const otherHost = randomLoopback();

/** A CA, and certificates it signs for `names` (with a new key, or `key`). */
before(async () => {
  const work = await tempDir('posta-doctor-');
  const { ca, issue } = await testCa(work, 'posta doctor test CA');
  caFile = ca.cert;
  host = randomLoopback();
  const leaf = await issue(['mail.example.test', 'mta-sts.example.test'], { days: 90 });
  certFile = leaf.cert;
  shortCert = (
    await issue(['mail.example.test', 'mta-sts.example.test'], { days: 5, key: leaf.key })
  ).cert;
  // A policy host that serves a policy naming another MX (the "policy" case).
  const other = await issue(['mta-sts.example.test'], { days: 90 });
  policyHost = createServer(
    { cert: await readFile(other.cert), key: await readFile(other.key) },
    (_req, res) => {
      res
        .writeHead(200, { 'content-type': 'text/plain' })
        .end('version: STSv1\r\nmode: enforce\r\nmx: mx.elsewhere.test\r\nmax_age: 86400\r\n');
    },
  );
  await new Promise<void>((resolve) => policyHost.listen(443, otherHost, resolve));

  probe = createTcpServer((socket) => {
    socket.on('error', () => {}); // the doctor hangs up at once
    socket.end('220 probe.test ESMTP\r\n');
  });
  const probeHost = randomLoopback();
  const probePort = await freePort(probeHost);
  await new Promise<void>((resolve) => probe.listen(probePort, probeHost, resolve));
  probeAt = `${probeHost}:${probePort}`;

  dns = await startDns(`${SOA('test')}\n`);
  s = await startServer({
    dns: dns.endpoint,
    host,
    https: true,
    certificate: ['[tls]', `cert = "${leaf.cert}"`, `key = "${leaf.key}"`].join('\n'),
  });
  // `addresses` is a top-level key: it goes above the first section.
  const file = join(s.dir, 'posta.toml');
  toml = (await readFile(file, 'utf8')).replace(
    /^(hostname = .*)$/m,
    `$1\naddresses = ["${host}"]`,
  );
  await writeFile(file, toml);
  for (const role of ['postmaster', 'abuse']) {
    const added = await posta([
      'alias',
      'add',
      `${role}@example.test`,
      'me@gmail.test',
      '--dir',
      s.dir,
    ]);
    assert.equal(added.code, 0, added.stderr);
  }
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  assert.equal(records.code, 0, records.stderr);
  ptrLine = `${reverseName(host)}. IN PTR mail.example.test.`;
  base = [SOA('example.test'), 'ns 300 IN A 127.0.0.1', records.stdout, ptrLine, ''].join('\n');
  await serve(base);
});

after(async () => {
  await s?.stop();
  policyHost?.close();
  probe?.close();
  dns?.stop();
});

let serial = 0;

/**
 * Serve `zone` and wait until the DNS server answers from it. The server
 * re-reads its file when the file's mtime changes, and answers in threads:
 * one may still answer from the old zone while another reads the new one. So
 * each zone gets a serial under _serial.example.test, its own mtime, and is
 * in use once a query returns that serial.
 */
async function serve(zone: string): Promise<void> {
  const n = ++serial;
  await dns.update(`${zone}\n_serial.example.test. IN TXT "${n}"\n`);
  await utimes(dns.file, 1e9 + n, 1e9 + n);
  const r = new Resolver({ timeout: 1000, tries: 1 });
  r.setServers([dns.endpoint]);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await r.resolveTxt('_serial.example.test').catch(() => []);
    if (answer.flat().join('') === String(n)) return;
    if (Date.now() > deadline) throw new Error(`the DNS server did not load zone ${n}`);
    await sleep(20);
  }
}

function doctor(extra: string[] = [], opts: { probe?: boolean } = {}): Promise<Run> {
  return posta(
    [
      ...['doctor', 'example.test', '--dir', s.dir, '--dnsbl', 'bl.test'],
      ...(opts.probe === false ? [] : ['--probe', probeAt]),
      ...extra,
    ],
    { env: { NODE_EXTRA_CA_CERTS: caFile } },
  );
}

async function doctorJson(extra: string[] = [], opts: { probe?: boolean } = {}) {
  const r = await doctor(['--json', ...extra], opts);
  let report: DoctorJson;
  try {
    report = JSON.parse(r.stdout) as DoctorJson;
  } catch {
    throw new Error(`posta doctor printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  }
  return { code: r.code, report, check: (id: string) => report.checks.find((c) => c.id === id) };
}

const shown = (report: DoctorJson) =>
  report.checks
    .map((c) => `${c.status} ${c.id}: ${c.detail}${c.fix ? ` | ${c.fix}` : ''}`)
    .join('\n');

const line = (re: RegExp) => (zone: string) => zone.split('\n').filter((l) => !re.test(l));
const without = (re: RegExp) => (zone: string) => line(re)(zone).join('\n');
const MX = /^example\.test\.\t\d+\tIN\tMX\t/;
const SPF = /^example\.test\.\t\d+\tIN\tTXT\t"v=spf1/;
const CNAME = /^mta-sts\.example\.test\.\t\d+\tIN\tCNAME\t/;

/** Zone edits (and, for the last few, edits of the server's files), one broken thing each. */
const CASES: {
  name: string;
  fails: string;
  detail: RegExp;
  fix?: RegExp;
  zone?: (zone: string) => string;
  setup?: () => Promise<() => Promise<void>>;
}[] = [
  {
    name: 'MX pointing elsewhere',
    fails: 'mx',
    detail: /MX 10 mx\.elsewhere\.test, not mail\.example\.test/,
    zone: (z) => `${without(MX)(z)}\nexample.test. IN MX 10 mx.elsewhere.test.\n`,
  },
  {
    name: 'an A record that is not the server',
    fails: 'address',
    detail: /also points at 127\.0\.0\.2/,
    // The policy host keeps its own A record, so only the hostname's answer changes.
    zone: (z) =>
      `${without(CNAME)(z)}\nmail.example.test. IN A 127.0.0.2\nmta-sts.example.test. IN A ${host}\n`,
  },
  {
    name: 'no PTR',
    fails: 'ptr',
    detail: /no PTR record/,
    zone: without(/IN PTR/),
  },
  {
    name: 'SPF not authorising the address',
    fails: 'spf',
    detail: /does not authorise 127\.\d+\.\d+\.\d+ \(fail\)/,
    zone: (z) => `${without(SPF)(z)}\nexample.test. IN TXT "v=spf1 ip4:192.0.2.1 -all"\n`,
  },
  {
    name: 'two SPF records',
    fails: 'spf',
    detail: /has 2 v=spf1 records/,
    zone: (z) => `${z}\nexample.test. IN TXT "v=spf1 -all"\n`,
  },
  {
    name: 'SPF with 11 includes',
    fails: 'spf',
    detail: /needs 11 DNS lookups/,
    zone: (z) => {
      const names = Array.from({ length: 11 }, (_, i) => `i${i + 1}.example.test`);
      return [
        without(SPF)(z),
        `example.test. IN TXT ${quoteTxt(`v=spf1 ip4:${host} ${names.map((n) => `include:${n}`).join(' ')} -all`)}`,
        ...names.map((n) => `${n}. IN TXT "v=spf1 -all"`),
        '',
      ].join('\n');
    },
  },
  {
    name: 'a DKIM record of another key',
    fails: 'dkim',
    detail: /\d{8}e\._domainkey\.example\.test publishes another key than .*\.ed25519\.key/,
    zone: (z) => {
      const selector = /^(\d{8}e)\._domainkey/m.exec(z)?.[1] ?? '';
      const { privateKey } = generateKeyPairSync('ed25519');
      const value = dkimTxt({ selector, algorithm: 'ed25519', file: '', privateKey, pem: '' });
      return `${without(/^\d{8}e\._domainkey/)(z)}\n${selector}._domainkey.example.test. IN TXT "${value}"\n`;
    },
  },
  {
    name: 'no DMARC',
    fails: 'dmarc',
    detail: /_dmarc\.example\.test has no v=DMARC1 record/,
    zone: without(/^_dmarc\./),
  },
  {
    name: 'no _mta-sts record',
    fails: 'mta-sts',
    detail: /_mta-sts\.example\.test has no v=STSv1 record/,
    zone: without(/^_mta-sts\./),
  },
  {
    name: 'a policy that does not name the hostname',
    fails: 'mta-sts',
    detail: /allows mx mx\.elsewhere\.test, not mail\.example\.test/,
    zone: (z) => `${without(CNAME)(z)}\nmta-sts.example.test. IN A ${otherHost}\n`,
  },
  {
    name: 'no TLS-RPT',
    fails: 'tls-rpt',
    detail: /_smtp\._tls\.example\.test has no v=TLSRPTv1 record/,
    zone: without(/^_smtp\._tls\./),
  },
  {
    name: 'no alias for abuse@',
    fails: 'postmaster',
    detail: /^abuse@example\.test goes nowhere \(no alias, no catch-all\)/,
    fix: /^posta alias add abuse@example\.test YOU@ELSEWHERE$/,
    async setup() {
      const file = join(s.dir, 'domains/example.test/aliases');
      const saved = await readFile(file);
      await writeFile(file, 'postmaster: me@gmail.test\n');
      return () => writeFile(file, saved);
    },
  },
  {
    name: 'a certificate that expires in 5 days',
    fails: 'certificate',
    detail: /mail\.example\.test: expires \d{4}-\d\d-\d\d, in [45] days/,
    async setup() {
      const saved = await readFile(certFile);
      await copyFile(shortCert, certFile);
      return () => writeFile(certFile, saved);
    },
  },
  {
    name: 'a listener that is not up',
    fails: 'listeners',
    detail: /submissions 127\.\d+\.\d+\.\d+:\d+ refused the connection/,
    async setup() {
      // posta.toml names a port the running server does not listen on.
      const file = join(s.dir, 'posta.toml');
      const port = await freePort(host);
      await writeFile(
        file,
        toml.replace(/^submissions = .*$/m, `submissions = ["${host}:${port}"]`),
      );
      return () => writeFile(file, toml);
    },
  },
  {
    name: 'an address on a blocklist',
    fails: 'dnsbl',
    detail: /127\.\d+\.\d+\.\d+ is listed in bl\.test/,
    zone: (z) =>
      `${z}\n${reverseName(host).replace(/\.in-addr\.arpa$/, '')}.bl.test. IN A 127.0.0.2\n`,
  },
];

test('a correct zone and a running server pass every check', async () => {
  const { code, report } = await doctorJson();
  assert.equal(code, 0, shown(report));
  assert.equal(report.domain, 'example.test');
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.checks.map((c) => c.id),
    ALL_IDS,
  );
  for (const c of report.checks) assert.equal(c.status, 'pass', `${c.id}: ${c.detail}`);
  assert.equal(
    report.checks.every((c) => c.fix === undefined),
    true,
  );
});

for (const c of CASES) {
  test(`${c.name}: ✗ ${c.fails}`, async () => {
    const restore = c.setup ? await c.setup() : undefined;
    if (c.zone) await serve(c.zone(base));
    try {
      const { code, report, check } = await doctorJson();
      const failed = report.checks.filter((x) => x.status !== 'pass').map((x) => x.id);
      assert.deepEqual(failed, [c.fails], shown(report));
      assert.equal(check(c.fails)?.status, 'fail');
      assert.match(check(c.fails)?.detail ?? '', c.detail);
      assert.ok((check(c.fails)?.fix ?? '').length > 10, 'a fix line');
      if (c.fix) assert.match(check(c.fails)?.fix ?? '', c.fix);
      assert.equal(report.ok, false);
      assert.equal(code, 1);
    } finally {
      await restore?.();
      await serve(base);
    }
  });
}

test('a policy host whose certificate senders cannot verify: the fix is the certificate', async () => {
  // Without the test CA the server's certificate is as untrusted as a self-signed one.
  const r = await posta([
    ...['doctor', 'example.test', '--dir', s.dir, '--json', '--probe', probeAt],
  ]);
  const report = JSON.parse(r.stdout) as DoctorJson;
  const sts = report.checks.find((c) => c.id === 'mta-sts');
  assert.equal(sts?.status, 'fail', shown(report));
  assert.match(
    sts?.detail ?? '',
    /cannot fetch https:\/\/mta-sts\.example\.test\/.*\((UNABLE_TO_\w+|\w*CERT\w*)\)/,
  );
  assert.match(sts?.fix ?? '', /a certificate from a public CA \(the \[acme\] section gets one\)/);
  assert.equal(r.code, 1);
});

test('the text report: one line per check with ✓ ✗ ! and a fix under each ✗ and !', async () => {
  const ok = await doctor();
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(
    ok.stdout,
    /^posta doctor example\.test: hostname mail\.example\.test, sending from 127\.[\d.]+$/m,
  );
  assert.match(ok.stdout, /^✓ MX +example\.test MX 10 mail\.example\.test$/m);
  assert.match(ok.stdout, /^✓ Certificate +mail\.example\.test, expires/m);
  assert.match(ok.stdout, /^All 14 checks passed\.$/m);

  await serve(without(/^_dmarc\./)(base));
  try {
    // Without --probe the doctor asks the configured DNS for gmail.com's MX:
    // the test DNS knows no gmail.com, so port 25 could not be tested.
    const bad = await doctor([], { probe: false });
    assert.equal(bad.code, 1);
    assert.match(
      bad.stdout,
      /^✗ DMARC +_dmarc\.example\.test has no v=DMARC1 record\n +fix: publish/m,
    );
    assert.match(
      bad.stdout,
      /^! Outbound port 25 +could not test: gmail\.com has no MX record in the configured DNS\n +fix: /m,
    );
    assert.match(bad.stdout, /^1 check failed, 1 warning: fix the ✗ lines/m);
  } finally {
    await serve(base);
  }
});

test('usage errors exit 2; a domain posta does not serve names posta init', async () => {
  const missing = await posta(['doctor', '--dir', s.dir]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /DOMAIN is missing/);
  const probe = await posta(['doctor', 'example.test', '--dir', s.dir, '--probe', 'nowhere']);
  assert.equal(probe.code, 2);
  assert.match(probe.stderr, /--probe nowhere is not HOST:PORT/);
  const foreign = await posta(['doctor', 'example.org', '--dir', s.dir]);
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /example\.org is not a domain of .*`posta init example\.org/);
  const help = await posta(['doctor', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: posta doctor DOMAIN/);
});

test('--fix: IPv6 without PTR while IPv4 has one sets ip_family = "ipv4-only"', async () => {
  const file = join(s.dir, 'posta.toml');
  const dual = toml.replace(/^addresses = .*$/m, `addresses = ["${host}", "::1"]`);
  await writeFile(file, dual);
  try {
    const records = await posta(['dns', 'example.test', '--dir', s.dir]);
    assert.match(records.stdout, /IN\tAAAA\t::1$/m);
    // The same zone, with the IPv6 address in SPF and AAAA, and only the IPv4 PTR.
    await serve(
      [SOA('example.test'), 'ns 300 IN A 127.0.0.1', records.stdout, ptrLine, ''].join('\n'),
    );
    const before = await doctorJson();
    assert.equal(before.code, 1, shown(before.report));
    assert.deepEqual(
      before.report.checks.filter((c) => c.status !== 'pass').map((c) => c.id),
      ['ptr'],
    );
    assert.match(
      before.check('ptr')?.detail ?? '',
      /IPv4: 127\.[\d.]+ → mail\.example\.test; IPv6: ::1 no PTR record/,
    );
    assert.match(before.check('ptr')?.fix ?? '', /ip_family = "ipv4-only".*--fix/);

    const fixed = await doctorJson(['--fix']);
    assert.equal(fixed.code, 0, shown(fixed.report));
    assert.equal(fixed.check('ptr')?.status, 'warn');
    assert.match(
      fixed.check('ptr')?.detail ?? '',
      /fixed: set \[delivery\] ip_family = "ipv4-only"/,
    );
    const text = await readFile(file, 'utf8');
    assert.match(text, /^\[delivery\]\nip_family = "ipv4-only"$/m);
    assert.equal(text.startsWith(dual.trimEnd()), true, 'the rest of the file is unchanged');

    const after = await doctorJson();
    assert.equal(after.code, 0, shown(after.report));
    assert.equal(after.check('ptr')?.status, 'warn');
    assert.match(after.check('ptr')?.detail ?? '', /posta delivers over IPv4 only/);
  } finally {
    await writeFile(file, toml);
    await serve(base);
  }
});

test('a stopped server: ✗ listeners with "start posta serve" (and the policy it serves is gone)', async () => {
  await s.stop();
  const { code, report, check } = await doctorJson();
  assert.equal(code, 1);
  assert.equal(check('listeners')?.status, 'fail', shown(report));
  assert.match(
    check('listeners')?.detail ?? '',
    /^every listener refused the connection: smtp 127\.[\d.]+:\d+, submission .*, submissions /,
  );
  assert.match(check('listeners')?.fix ?? '', /not running\? start posta serve/);
  // posta itself serves https://mta-sts.example.test/: with it down, that fails too.
  assert.equal(check('mta-sts')?.status, 'fail');
  assert.match(check('mta-sts')?.detail ?? '', /cannot fetch https:\/\/mta-sts\.example\.test/);
  assert.deepEqual(
    report.checks.filter((c) => c.status !== 'pass').map((c) => c.id),
    ['mta-sts', 'listeners'],
    shown(report),
  );
});
