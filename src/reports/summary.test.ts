import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { openDb } from '../db/db.ts';
import { createLogger } from '../log/log.ts';
import { split } from '../message/held.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import {
  fixture,
  googleDmarc,
  googleTls,
  microsoftDmarc,
  microsoftTls,
  reportMail,
} from '../../test/helpers/reports.ts';
import { reportKind } from './mail.ts';
import { insertReport, pruneReports } from './store.ts';
import { reportSummary } from './summary.ts';
import { takeReports } from './take.ts';
import { ReportBudget } from './budget.ts';

const DAY = 86_400_000;

function setup() {
  const db = openDb(':memory:', MIGRATIONS);
  const lines: { msg: string; err?: string }[] = [];
  const log = createLogger({
    destination: new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(JSON.parse(chunk.toString()) as { msg: string });
        done();
      },
    }),
  });
  const deps = {
    record: (r: Parameters<typeof insertReport>[1]) => Promise.resolve(insertReport(db, r)),
    domains: ['example.test'],
    budget: new ReportBudget(),
    log,
  };
  const take = async (mail: Buffer, verified = true, id = 'q1') => {
    const held = split(mail);
    const kind = reportKind(held.head);
    assert.ok(kind, 'a report mail');
    await takeReports(deps, held, kind, id, {
      address: 'reports@reporter.example',
      auth: { spf: verified ? 'pass' : 'fail', dkim: 'none' },
    });
  };
  return { db, lines, take };
}

test('the header says which report a mail is; other mail is none', () => {
  const kind = (m: Buffer) => reportKind(split(m).head);
  assert.equal(kind(googleDmarc()), 'dmarc');
  assert.equal(kind(microsoftDmarc()), 'dmarc');
  assert.equal(kind(googleTls()), 'tlsrpt');
  assert.equal(kind(Buffer.from('Subject: Report on the domain\r\n\r\nhi\r\n')), null);
  assert.equal(kind(Buffer.from('Subject: hello\r\n\r\nReport Domain: x Submitter: y\r\n')), null);
});

test("Google's and Microsoft's DMARC reports and TLS reports make one summary; a resent report counts once", async () => {
  const { db, take } = setup();
  await take(googleDmarc());
  await take(microsoftDmarc(), false);
  await take(googleDmarc(), true, 'q2'); // the same report again
  await take(googleTls());
  await take(microsoftTls());
  const s = reportSummary(db, { days: 7 });
  assert.equal(s.dmarc.length, 1);
  const d = s.dmarc[0];
  assert.equal(d?.domain, 'example.test');
  assert.equal(d?.reports, 2);
  assert.equal(d?.messages, 41 + 3 + 5 + 7 + 2);
  assert.equal(d?.dmarcFail, 7);
  // the failing source first, both reporters named, Microsoft's as unverified
  assert.deepEqual(
    d?.sources.map((x) => [x.ip, x.messages, x.dkimPass, x.spfPass, x.dmarcFail, x.failing]),
    [
      ['203.0.113.66', 7, 0, 0, 7, true],
      ['192.0.2.25', 41, 41, 41, 0, false],
      ['2001:db8::25', 7, 7, 7, 0, false],
      ['198.51.100.7', 3, 3, 0, 0, false],
    ],
  );
  assert.deepEqual(d?.sources[0]?.dispositions, { quarantine: 7 });
  assert.deepEqual(d?.sources[0]?.reporters, [
    { org: 'Enterprise Outlook', verified: false },
    { org: 'google.com', verified: true },
  ]);
  assert.deepEqual(
    s.tls.map((t) => [t.domain, t.org, t.successful, t.failed, t.failures]),
    [
      [
        'example.test',
        'Google Inc.',
        120,
        4,
        [
          ['certificate-expired', 3],
          ['starttls-not-supported', 1],
        ],
      ],
      ['example.test', 'Microsoft Corporation', 30, 2, [['validation-failure', 2]]],
    ],
  );
  assert.equal(reportSummary(db, { days: 7, domain: 'other.test' }).dmarc.length, 0);
  assert.equal(reportSummary(db, { days: 7, domain: 'Example.Test' }).tls.length, 2);
});

test('a report about another domain, a broken one and one with no attachment are logged and dropped', async () => {
  const { db, lines, take } = setup();
  await take(
    googleDmarc(
      fixture('google-dmarc.xml').replace(
        '<domain>example.test</domain>',
        '<domain>other.test</domain>',
      ),
    ),
  );
  await take(googleDmarc('<feedback><report_metadata>'));
  await take(googleDmarc('<!DOCTYPE x [<!ENTITY a "b">]><feedback/>'));
  await take(
    reportMail({
      from: 'noreply-dmarc-support@google.com',
      subject: 'Report domain: example.test Submitter: google.com Report-ID: 1',
      type: 'multipart/mixed',
      text: 'no attachment',
      attachment: { type: 'text/plain', name: 'notes.txt', data: Buffer.from('hi') },
    }),
  );
  assert.deepEqual(reportSummary(db, { days: 7 }).dmarc, []);
  const msgs = lines.map((l) => `${l.msg}${l.err ? `: ${l.err}` : ''}`);
  assert.ok(msgs.includes('report not kept: it is about other.test'), msgs.join('\n'));
  assert.ok(
    msgs.some((m) => /^report not read: the element <report_metadata> is not closed/.test(m)),
    msgs.join('\n'),
  );
  assert.ok(
    msgs.some((m) => /document type declaration/.test(m)),
    msgs.join('\n'),
  );
  assert.ok(msgs.includes('report not read: no report attachment'), msgs.join('\n'));
});

test('reports go with the prune, and --days counts from when they came', async () => {
  const { db, take } = setup();
  await take(googleDmarc());
  const now = Date.now();
  assert.equal(reportSummary(db, { days: 1, now: now + 2 * DAY }).dmarc.length, 0);
  assert.equal(reportSummary(db, { days: 3, now: now + 2 * DAY }).dmarc.length, 1);
  pruneReports(db, now + 1);
  assert.equal(reportSummary(db, { days: 30 }).dmarc.length, 0);
  assert.equal((db.prepare('SELECT count(*) AS n FROM dmarc_records').get() as { n: number }).n, 0);
});
