import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir, type NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import { parseConfigText } from '../config/load.ts';
import { selfSignedCertificate } from '../tls/selfsigned.ts';
import { setIpFamily } from './fix.ts';
import { isPublic, sendingAddresses } from './addresses.ts';
import { checkDkim, countSpfLookups } from './auth-checks.ts';
import { dkimTxt, generateKeys } from '../dkim/keys.ts';
import { checkCertificate } from './certificate.ts';
import { checkMx, checkPtr, type DnsContext } from './dns-checks.ts';
import { checkPostmaster } from './postmaster.ts';
import { formatText, report, fail, pass, warn } from './report.ts';

/** A map-based resolver: "TYPE name" -> answer; anything else does not exist. */
function fakeResolve(zone: Record<string, unknown>) {
  return (name: string, rrtype: string) => {
    const answer = zone[`${rrtype} ${name}`];
    if (answer === undefined) {
      return Promise.reject(Object.assign(new Error(`${name} not found`), { code: 'ENOTFOUND' }));
    }
    if (answer === 'SERVFAIL') {
      return Promise.reject(Object.assign(new Error('SERVFAIL'), { code: 'ESERVFAIL' }));
    }
    return Promise.resolve(answer);
  };
}

const BASE = 'hostname = "mail.example.com"\n[listen]\nsmtp = ["0.0.0.0:25"]\n';

test('setIpFamily edits posta.toml as text', () => {
  const cases: [string, string, string][] = [
    ['no [delivery]: a section is added', BASE, `${BASE}\n[delivery]\nip_family = "ipv4-only"\n`],
    [
      'an existing ip_family line is replaced, its comment with it',
      `${BASE}[delivery]\nconcurrency = 4\nip_family = "prefer-ipv6"   # default\n[inbound]\ndnsbl = []\n`,
      `${BASE}[delivery]\nconcurrency = 4\nip_family = "ipv4-only"\n[inbound]\ndnsbl = []\n`,
    ],
    [
      '[delivery] without the key: added under the header',
      `${BASE}[delivery] # sending\nconcurrency = 4\n`,
      `${BASE}[delivery] # sending\nip_family = "ipv4-only"\nconcurrency = 4\n`,
    ],
    [
      'a commented-out ip_family stays a comment',
      `${BASE}[delivery]\n# ip_family = "prefer-ipv6"\n`,
      `${BASE}[delivery]\nip_family = "ipv4-only"\n# ip_family = "prefer-ipv6"\n`,
    ],
    [
      'CRLF line ends stay CRLF',
      'hostname = "mail.example.com"\r\n[delivery]\r\nip_family = "ipv6-only"\r\n',
      'hostname = "mail.example.com"\r\n[delivery]\r\nip_family = "ipv4-only"\r\n',
    ],
    [
      'a file without a final newline',
      'hostname = "mail.example.com"',
      'hostname = "mail.example.com"\n\n[delivery]\nip_family = "ipv4-only"\n',
    ],
  ];
  for (const [name, before, after] of cases) {
    const got = setIpFamily(before, 'ipv4-only');
    assert.equal(got, after, name);
    assert.equal(parseConfigText('posta.toml', got).delivery.ip_family, 'ipv4-only', name);
  }
});

test('sending addresses: configured, else public interface addresses, else unknown', () => {
  const iface = (address: string, internal = false): NetworkInterfaceInfo => {
    const common = { address, internal, netmask: '', mac: '', cidr: null };
    return address.includes(':')
      ? { ...common, family: 'IPv6', scopeid: 0 }
      : { ...common, family: 'IPv4' };
  };
  assert.deepEqual(sendingAddresses(['192.0.2.1'], { eth0: [iface('203.0.113.9')] }), {
    addresses: ['192.0.2.1'],
    source: 'config',
  });
  assert.deepEqual(
    sendingAddresses([], {
      lo: [iface('127.0.0.1', true), iface('::1', true)],
      eth0: [iface('203.0.113.9'), iface('fe80::1'), iface('2001:db8::25')],
    }).addresses,
    ['203.0.113.9', '2001:db8::25'],
  );
  const natted = sendingAddresses([], { eth0: [iface('10.0.0.5'), iface('fd00::5')] });
  assert.deepEqual(natted.addresses, []);
  assert.match(natted.unknown ?? '', /only private addresses \(10\.0\.0\.5, fd00::5\)/);
  for (const [ip, expected] of [
    ['8.8.8.8', true],
    ['10.1.2.3', false],
    ['172.16.0.1', false],
    ['172.32.0.1', true],
    ['192.168.1.1', false],
    ['100.64.0.1', false],
    ['169.254.1.1', false],
    ['127.0.0.1', false],
    ['2a00:1450::1', true],
    ['::1', false],
    ['fe80::1%eth0', false],
    ['fd12::1', false],
    ['::ffff:10.0.0.1', false],
  ] as const) {
    assert.equal(isPublic(ip), expected, ip);
  }
});

test('SPF lookups are counted through include and redirect, as RFC 7208 §4.6.4 says', async () => {
  const resolve = fakeResolve({
    'TXT a.example': [['v=spf1 include:b.example mx a -all']],
    'TXT b.example': [['v=spf1 ip4:192.0.2.0/24 exists:%{i}.x.example ptr ~all']],
    'TXT loop.example': [['v=spf1 include:loop.example -all']],
    'TXT r.example': [['v=spf1 redirect=a.example']],
    'TXT r-all.example': [['v=spf1 a -all redirect=a.example']],
  });
  const cases: [string, number][] = [
    ['v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 -all', 0],
    ['v=spf1 a mx a:x.example mx/24 ptr exists:y.example -all', 6],
    ['v=spf1 include:a.example -all', 6], // include a, include b, mx, a, exists, ptr
    ['v=spf1 include:loop.example -all', 2],
    ['v=spf1 redirect=r.example', 7], // redirect r, redirect a, then a's 5
    ['v=spf1 redirect=r-all.example', 2], // r-all's redirect is ignored (§6.1)
    ['v=spf1 include:missing.example ?all', 1],
  ];
  for (const [record, n] of cases) {
    assert.equal(await countSpfLookups(resolve, record), n, record);
  }
});

test('MX and PTR results', async () => {
  const ctx = (zone: Record<string, unknown>, addresses: string[] = ['192.0.2.25']) =>
    ({
      domain: 'example.com',
      hostname: 'mail.example.com',
      resolve: fakeResolve(zone),
      sending: { addresses, source: 'config' },
      ipFamily: 'prefer-ipv6',
    }) satisfies DnsContext;
  const mxCases: [Record<string, unknown>, string, RegExp][] = [
    [{ 'MX example.com': [{ exchange: 'mail.example.com', priority: 10 }] }, 'pass', /MX 10/],
    [{}, 'fail', /no MX record/],
    [{ 'MX example.com': [{ exchange: '', priority: 0 }] }, 'fail', /null MX/],
    [
      {
        'MX example.com': [
          { exchange: 'mail.example.com', priority: 20 },
          { exchange: 'mx.old.example', priority: 10 },
        ],
      },
      'warn',
      /mx\.old\.example come before/,
    ],
    [{ 'MX example.com': 'SERVFAIL' }, 'throws', /SERVFAIL/],
  ];
  for (const [zone, status, detail] of mxCases) {
    const got = await checkMx(ctx(zone)).catch((err: Error) => ({
      status: 'throws',
      detail: err.message,
    }));
    assert.equal(got.status, status, JSON.stringify(zone));
    assert.match(got.detail, detail);
  }
  const ptrZone = {
    'PTR 25.2.0.192.in-addr.arpa': ['mail.example.com'],
    'A mail.example.com': ['192.0.2.25'],
    'AAAA mail.example.com': ['2001:db8::25'],
  };
  const dual = ctx(ptrZone, ['192.0.2.25', '2001:db8::25']);
  const v6missing = await checkPtr(dual);
  assert.equal(v6missing.status, 'fail');
  assert.equal(v6missing.suggestIpv4Only, true);
  const v4only = await checkPtr({ ...dual, ipFamily: 'ipv4-only' });
  assert.equal(v4only.status, 'warn');
  assert.equal(v4only.suggestIpv4Only, false);
  const notBack = await checkPtr(ctx({ ...ptrZone, 'A mail.example.com': ['192.0.2.26'] }));
  assert.equal(notBack.status, 'fail');
  assert.match(notBack.detail, /does not resolve back to it/);
  const unknown = await checkPtr({
    ...dual,
    sending: { addresses: [], source: 'interfaces', unknown: 'behind NAT' },
  });
  assert.equal(unknown.status, 'warn');
  assert.match(unknown.detail, /could not test: behind NAT/);
});

test('certificate: self-signed is a warning, too few days or another name a failure', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-doctor-'));
  const file = join(dir, 'cert.pem');
  const cert = await selfSignedCertificate(['mail.example.com']);
  await writeFile(file, cert.cert);
  const at = (daysBeforeExpiry: number) => () =>
    new Date(cert.notAfter.getTime() - daysBeforeExpiry * 86400_000);
  const input = { file, hostname: 'mail.example.com', managedByAcme: false, now: at(100) };
  const cases: [Parameters<typeof checkCertificate>[0], string, RegExp][] = [
    [input, 'warn', /self-signed: TLS works, but senders cannot verify it/],
    [{ ...input, roots: [cert.cert.toString()] }, 'pass', /chain of 1 complete/],
    [{ ...input, now: at(5) }, 'fail', /in [45] days/],
    [{ ...input, now: at(-1) }, 'fail', /expired/],
    [{ ...input, hostname: 'other.example.com' }, 'fail', /not other\.example\.com/],
    [{ ...input, file: join(dir, 'missing.pem') }, 'fail', /cannot read .*ENOENT/],
  ];
  for (const [i, status, detail] of cases) {
    const got = await checkCertificate(i);
    assert.equal(got.status, status, got.detail);
    assert.match(got.detail, detail);
  }
});

test('the text report marks each line and puts the fix under it', () => {
  const text = formatText(
    report('example.com', [
      pass('mx', 'example.com MX 10 mail.example.com'),
      fail('spf', 'no record', 'publish one'),
      warn('outbound-25', 'could not test', 'use --probe'),
    ]),
    'heading',
  );
  assert.equal(
    text,
    [
      'heading',
      '',
      '✓ MX                example.com MX 10 mail.example.com',
      '✗ SPF               no record',
      '                    fix: publish one',
      '! Outbound port 25  could not test',
      '                    fix: use --probe',
      '',
      '1 check failed, 1 warning: fix the ✗ lines and run posta doctor again.',
      '',
    ].join('\n'),
  );
});

test('postmaster: postmaster@ and abuse@ must resolve (an alias, the catch-all, another local domain)', async () => {
  const cases: [string, Record<string, string>, 'pass' | 'fail', RegExp][] = [
    ['no aliases', {}, 'fail', /^postmaster@example\.test and abuse@example\.test go nowhere/],
    [
      'postmaster only',
      { 'example.test': 'postmaster: me@gmail.test\n' },
      'fail',
      /^abuse@example\.test goes nowhere/,
    ],
    [
      'both',
      { 'example.test': 'postmaster: me@gmail.test\nabuse: me@gmail.test\n' },
      'pass',
      /postmaster@example\.test → me@gmail\.test; abuse@example\.test → me@gmail\.test/,
    ],
    [
      'the catch-all counts',
      { 'example.test': '*: me@gmail.test\n' },
      'pass',
      /abuse@example\.test → me@gmail\.test/,
    ],
    [
      'through another local domain',
      {
        'example.test': 'postmaster: pm@example.org\nabuse: postmaster\n',
        'example.org': 'pm: me@gmail.test\n',
      },
      'pass',
      /abuse@example\.test → me@gmail\.test/,
    ],
    [
      'a loop goes nowhere',
      { 'example.test': 'postmaster: abuse\nabuse: postmaster\n' },
      'fail',
      /and abuse@example\.test go nowhere/,
    ],
  ];
  for (const [name, files, status, detail] of cases) {
    const dir = await mkdtemp(join(tmpdir(), 'posta-pm-'));
    for (const d of ['example.test', 'example.org']) {
      await mkdir(join(dir, 'domains', d), { recursive: true });
      await writeFile(join(dir, 'domains', d, 'aliases'), files[d] ?? '');
    }
    const r = await checkPostmaster(dir, 'example.test');
    assert.equal(r.status, status, `${name}: ${r.detail}`);
    assert.match(r.detail, detail, name);
    if (status === 'fail')
      assert.match(
        r.fix ?? '',
        /^posta alias add (postmaster|abuse)@example\.test YOU@ELSEWHERE/,
        name,
      );
  }
});

test('dkim during a rotation: a missing new or old record warns with what to do, a missing signing one fails', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-doctor-dkim-'));
  const keys = [
    ...(await generateKeys(dir, new Date(), { rsa: 'old-r', ed25519: 'old-e' })),
    ...(await generateKeys(dir, new Date(), { rsa: 'new-r', ed25519: 'new-e' })),
  ];
  const record = (sel: string) => {
    const k = keys.find((x) => x.selector === sel);
    return k ? { [`TXT ${sel}._domainkey.example.com`]: [[dkimTxt(k)]] } : {};
  };
  const all = ['old-r', 'old-e', 'new-r', 'new-e'];
  const plan = {
    newSelectors: ['new-r', 'new-e'],
    oldSelectors: ['old-r', 'old-e'],
    started: new Date('2026-12-01T00:00:00Z'),
    after: null,
    graceDays: 7,
  };
  const switched = new Date('2026-12-02T00:00:00Z');
  const at = (d: string) => new Date(`${d}T00:00:00Z`);
  // [case, published selectors, switched at, now, status, detail, fix]
  const cases: [string, string[], Date | null, Date, string, RegExp, RegExp][] = [
    [
      'all published, pending',
      all,
      null,
      at('2026-12-01'),
      'pass',
      /new-e \(ed25519\) new, published/,
      /^$/,
    ],
    [
      'a new record missing: warn with the record',
      ['old-r', 'old-e', 'new-r'],
      null,
      at('2026-12-01'),
      'warn',
      /new-e\._domainkey\.example\.com has no key record: the new key new-e waits for it/,
      /^publish `new-e\._domainkey\.example\.com\.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=/,
    ],
    [
      'an old signing record missing: fail',
      ['old-r', 'new-r', 'new-e'],
      null,
      at('2026-12-01'),
      'fail',
      /old-e\._domainkey\.example\.com has no key record/,
      /posta dns/,
    ],
    [
      'switched: old kept until',
      all,
      switched,
      at('2026-12-03'),
      'pass',
      /old-r \(rsa\) old: keep it published until 2026-12-09/,
      /^$/,
    ],
    [
      'switched: an old record removed too early',
      ['old-r', 'new-r', 'new-e'],
      switched,
      at('2026-12-03'),
      'warn',
      /old-e\._domainkey\.example\.com has no key record: the old key old-e signed mail until 2026-12-02; keep it published until 2026-12-09/,
      /posta dns/,
    ],
    [
      'grace over',
      ['new-r', 'new-e'],
      switched,
      at('2026-12-10'),
      'pass',
      /old-r \(rsa\) old: its record may be removed since 2026-12-09/,
      /^$/,
    ],
  ];
  for (const [name, published, switchedAt, now, status, detail, fix] of cases) {
    const ctx = {
      domain: 'example.com',
      hostname: 'mail.example.com',
      resolve: fakeResolve(Object.assign({}, ...published.map(record)) as Record<string, unknown>),
      sending: { addresses: [], source: 'config' as const },
      ipFamily: 'prefer-ipv6' as const,
    };
    const r = await checkDkim(ctx, keys, dir, { plan, switchedAt, now });
    assert.equal(r.status, status, `${name}: ${r.detail}`);
    assert.match(r.detail, detail, name);
    assert.match(r.fix ?? '', fix, name);
  }
});
