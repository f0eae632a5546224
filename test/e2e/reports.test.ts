/**
 * DMARC aggregate and TLS reports end to end: a real `posta serve`; Python's
 * smtplib delivers, on port 25 to postmaster@example.test (the rua address
 * `posta dns` publishes), Google's DMARC report (zip), Microsoft's (gzip),
 * Google's TLS report (application/tlsrpt+gzip), the same Google report
 * again, and a zip bomb. Every one gets 250 and is forwarded to the alias
 * target at a loopback MX; `posta reports --json` and the dashboard's
 * Reports page show the summary; the resent report counts once, and the
 * bomb is a log line.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { zipSync } from 'fflate';
import { posta } from '../helpers/posta.ts';
import { adminPage } from '../helpers/dashboard.ts';
import { SOA } from '../helpers/dns.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { googleDmarc, googleTls, microsoftDmarc, reportMail } from '../helpers/reports.ts';
import type { ReportSummary } from '../../src/reports/summary.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let s: TestServer;

before(async () => {
  mx = await startMxFor('gmail.test');
  // google.test's reporting servers are on loopback and in its SPF record; microsoft.test has none
  await mx.dns.update(
    [
      SOA('test'),
      'gmail.test. IN MX 10 mx.gmail.test.',
      `mx.gmail.test. IN A ${mx.address}`,
      'google.test. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
      '',
    ].join('\n'),
  );
  s = await startServer({ dns: mx.dns.endpoint, http: true });
  await s.reload(async () => {
    const r = await posta([
      'alias',
      'add',
      'postmaster@example.test',
      'owner@gmail.test',
      '--dir',
      s.dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
});

after(async () => {
  await s?.stop();
  await mx?.stop();
});

/** One message over port 25 with Python's smtplib; its reply to the end of DATA. */
function smtplib(from: string, data: Buffer): Promise<string> {
  const code =
    'import smtplib,sys\n' +
    's=smtplib.SMTP(sys.argv[1], int(sys.argv[2]), local_hostname="mx.reporter.test")\n' +
    's.ehlo(); s.mail(sys.argv[3]); s.rcpt("postmaster@example.test")\n' +
    'code, reply = s.data(sys.stdin.buffer.read())\n' +
    'print(code, reply.decode()); s.quit()\n';
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      ['-c', code, s.host, String(s.ports.smtp), from],
      (err, stdout, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(stdout.trim()),
    );
    child.stdin?.end(data);
  });
}

test('reports to postmaster@ are stored and summarised, and still forwarded to the alias target', async () => {
  const from = s.logs.length;
  const bomb = reportMail({
    from: 'noreply-dmarc-support@google.test',
    subject: 'Report domain: example.test Submitter: google.com Report-ID: bomb',
    type: 'multipart/mixed',
    text: '',
    attachment: {
      type: 'application/zip',
      name: 'bomb.zip',
      data: Buffer.from(zipSync({ 'bomb.xml': Buffer.alloc(64 * 1024 * 1024, 0x20) })),
    },
  });
  const mails: [string, Buffer][] = [
    ['noreply-dmarc-support@google.test', googleDmarc()],
    ['dmarcreport@microsoft.test', microsoftDmarc()],
    ['noreply-smtp-tls-reporting@google.test', googleTls()],
    ['noreply-dmarc-support@google.test', googleDmarc()],
    ['noreply-dmarc-support@google.test', bomb],
  ];
  for (const [sender, data] of mails) assert.match(await smtplib(sender, data), /^250 /);

  // each one forwarded as the alias says
  for (const subject of [
    /Submitter: google\.com Report-ID: 1349/,
    /Submitter: enterprise\.protection/,
    /TLS-Report-Domain: example\.test/,
    /Report-ID: bomb/,
  ]) {
    await mx.rx.arrival(
      (m) => m.rcptTos.includes('owner@gmail.test') && subject.test(m.data.toString('latin1')),
      String(subject),
    );
  }
  assert.ok((await s.logged(from, 'report stored already')).length);
  assert.ok((await s.logged(from, 'inflates past')).length);

  const r = await posta(['reports', '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as ReportSummary;
  const d = summary.dmarc[0];
  assert.equal(summary.dmarc.length, 1);
  assert.equal(d?.domain, 'example.test');
  assert.equal(d?.reports, 2);
  assert.equal(d?.messages, 58);
  const failing = d?.sources.find((x) => x.ip === '203.0.113.66');
  assert.deepEqual(
    failing && { n: failing.messages, fail: failing.dmarcFail, flag: failing.failing },
    { n: 7, fail: 7, flag: true },
  );
  assert.deepEqual(failing?.reporters, [
    { org: 'Enterprise Outlook', verified: false },
    { org: 'google.com', verified: true },
  ]);
  assert.equal(d?.sources.find((x) => x.ip === '192.0.2.25')?.failing, false);
  assert.deepEqual(
    summary.tls.map((t) => [t.org, t.verified, t.successful, t.failed, t.failures]),
    [
      [
        'Google Inc.',
        true,
        120,
        4,
        [
          ['certificate-expired', 3],
          ['starttls-not-supported', 1],
        ],
      ],
    ],
  );

  const text = await posta(['reports', '--domain', 'example.test', '--days', '7', '--dir', s.dir]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^DMARC example\.test: 2 reports, 58 messages, 7 failed DMARC$/m);
  assert.match(
    text.stdout,
    /^! +203\.0\.113\.66 +7 +0 +0 +7 +quarantine 7 +Enterprise Outlook \(unverified\), google\.com$/m,
  );
  assert.match(
    text.stdout,
    /^TLS example\.test from Google Inc\.: 1 reports, 120 sessions succeeded, 4 failed: certificate-expired 3, starttls-not-supported 1$/m,
  );

  // the dashboard's Reports page, for the admin
  const page = await adminPage(s, '/reports');
  assert.equal(page.status, 200);
  const html = await page.text();
  assert.match(html, /<code>203\.0\.113\.66<\/code>/);
  assert.match(html, /certificate-expired 3/);
});
