import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture } from '../../test/helpers/reports.ts';
import { MAX_RECORDS, parseDmarcReport, ReportError } from './dmarc.ts';

test("Google's aggregate report: metadata, policy and each record", () => {
  const r = parseDmarcReport(fixture('google-dmarc.xml'));
  assert.deepEqual(
    { org: r.org, email: r.email, id: r.reportId, begin: r.begin, end: r.end },
    {
      org: 'google.com',
      email: 'noreply-dmarc-support@google.com',
      id: '13498740294861293014',
      begin: 1785542400,
      end: 1785628799,
    },
  );
  assert.equal(r.domain, 'example.test');
  assert.equal(r.policy, 'quarantine');
  assert.deepEqual(
    r.records.map((x) => [x.sourceIp, x.count, x.disposition, x.dkim, x.spf, x.headerFrom]),
    [
      ['192.0.2.25', 41, 'none', 'pass', 'pass', 'example.test'],
      ['198.51.100.7', 3, 'none', 'pass', 'fail', 'example.test'],
      ['203.0.113.66', 5, 'quarantine', 'fail', 'fail', 'example.test'],
    ],
  );
  assert.deepEqual(r.records[0]?.dkimResults, [
    { domain: 'example.test', result: 'pass', detail: 'posta2026r' },
  ]);
  assert.deepEqual(r.records[1]?.spfResults, [
    { domain: 'lists.forwarder.example', result: 'softfail', detail: '' },
  ]);
});

test("Microsoft's: the xmlns attributes, <version> and an IPv6 source read like the rest", () => {
  const r = parseDmarcReport(fixture('microsoft-dmarc.xml'));
  assert.equal(r.org, 'Enterprise Outlook');
  assert.equal(r.reportId, '9c3b6f0e2a7d4e1b8f5a3c2d1e0f9a8b');
  assert.deepEqual(
    r.records.map((x) => [x.sourceIp, x.count, x.dkim, x.spf]),
    [
      ['2001:db8::25', 7, 'pass', 'pass'],
      ['203.0.113.66', 2, 'fail', 'fail'],
    ],
  );
  assert.deepEqual(r.records[0]?.spfResults, [
    { domain: 'example.test', result: 'pass', detail: 'mfrom' },
  ]);
});

const record = (ip: string, count = '1') =>
  `<record><row><source_ip>${ip}</source_ip><count>${count}</count><policy_evaluated>` +
  '<disposition>none</disposition><dkim>pass</dkim><spf>fail</spf>' +
  '<reason><type>forwarded</type></reason></policy_evaluated></row>' +
  '<identifiers><header_from>Mail.Example.Test</header_from></identifiers></record>';
const report = (o: { meta?: string; records?: string; root?: string } = {}) =>
  `<?xml version="1.0"?><${o.root ?? 'feedback xmlns="urn:ietf:params:xml:ns:dmarc-2.0"'}>` +
  '<version>1.0</version>' +
  (o.meta ??
    '<report_metadata><org_name>Yahoo</org_name><report_id>1785</report_id>' +
      '<date_range><begin>1785542400</begin><end>1785628799</end></date_range></report_metadata>') +
  '<policy_published><domain>Example.Test</domain><p>reject</p></policy_published>' +
  (o.records ?? record('192.0.2.1')) +
  '</feedback>';

test('the DMARCbis namespace, reasons, and names lower-cased', () => {
  const r = parseDmarcReport(report());
  assert.equal(r.domain, 'example.test');
  assert.equal(r.records[0]?.headerFrom, 'mail.example.test');
  assert.deepEqual(r.records[0]?.reasons, ['forwarded']);
});

const refused: [string, string, RegExp][] = [
  [
    'another root element',
    report({ root: 'report' }).replace('</feedback>', '</report>'),
    /not <feedback>/,
  ],
  [
    'no report_id',
    report({
      meta: '<report_metadata><org_name>x</org_name><date_range><begin>1</begin><end>2</end></date_range></report_metadata>',
    }),
    /report_metadata\/report_id/,
  ],
  [
    'no org_name',
    report({ meta: '<report_metadata><report_id>1</report_id></report_metadata>' }),
    /org_name/,
  ],
  [
    'a date that is no number',
    report({
      meta: '<report_metadata><org_name>x</org_name><report_id>1</report_id><date_range><begin>yesterday</begin><end>2</end></date_range></report_metadata>',
    }),
    /date_range\/begin/,
  ],
  [
    'a source that is no IP address',
    report({ records: record('mail.example.test') }),
    /record 1 has no source_ip/,
  ],
  [
    'a count that is no number',
    report({ records: record('192.0.2.1', '-3') }),
    /record 1 has no message count/,
  ],
  [
    'too many records',
    report({ records: record('192.0.2.1').repeat(MAX_RECORDS + 1) }),
    /records, over 5000/,
  ],
];
for (const [what, xml, message] of refused) {
  test(`refuses a report with ${what}`, () => {
    assert.throws(
      () => parseDmarcReport(xml),
      (err: Error) => {
        assert.ok(err instanceof ReportError, err.message);
        assert.match(err.message, message);
        return true;
      },
    );
  });
}

test('refuses an entity trick before reading any of it', () => {
  const xml = report().replace(
    '<?xml version="1.0"?>',
    '<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
  );
  assert.throws(() => parseDmarcReport(xml), /document type declaration/);
});
