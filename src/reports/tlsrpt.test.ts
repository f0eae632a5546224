import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture } from '../../test/helpers/reports.ts';
import { ReportError } from './dmarc.ts';
import { parseTlsReport } from './tlsrpt.ts';

test("Google's TLS report (RFC 8460 §4.4): the policy, its sessions, and the failures by result type", () => {
  const r = parseTlsReport(fixture('google-tlsrpt.json'));
  assert.equal(r.org, 'Google Inc.');
  assert.equal(r.reportId, '2026-08-01T00:00:00Z_example.test');
  assert.equal(r.contact, 'smtp-tls-reporting@google.com');
  assert.equal(r.begin, Date.parse('2026-08-01T00:00:00Z'));
  assert.deepEqual(r.policies, [
    {
      type: 'sts',
      domain: 'example.test',
      mxHosts: ['mail.example.test'],
      successful: 120,
      failed: 4,
      failures: [
        {
          resultType: 'certificate-expired',
          sendingIp: '209.85.220.41',
          receivingMx: 'mail.example.test',
          count: 3,
        },
        {
          resultType: 'starttls-not-supported',
          sendingIp: '209.85.220.42',
          receivingMx: 'mail.example.test',
          count: 1,
        },
      ],
    },
  ]);
});

test("Microsoft's: a failure reason code, and an IPv6 sender", () => {
  const r = parseTlsReport(fixture('microsoft-tlsrpt.json'));
  assert.equal(r.org, 'Microsoft Corporation');
  assert.deepEqual(r.policies[0]?.failures, [
    {
      resultType: 'validation-failure',
      sendingIp: '2a01:111:f403:2c11::700',
      receivingMx: 'mail.example.test',
      count: 2,
    },
  ]);
});

const good = JSON.parse(fixture('google-tlsrpt.json')) as Record<string, unknown>;
const refused: [string, string, RegExp][] = [
  ['no JSON', '{"organization-name": ', /not JSON/],
  ['a list', '[]', /RFC 8460 §4.4/],
  ['no policies', JSON.stringify({ ...good, policies: undefined }), /policies/],
  ['no report id', JSON.stringify({ ...good, 'report-id': 7 }), /report-id/],
  [
    'a bad date',
    JSON.stringify({
      ...good,
      'date-range': { 'start-datetime': 'soon', 'end-datetime': 'later' },
    }),
    /date-range/,
  ],
  [
    'a negative count',
    JSON.stringify({
      ...good,
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-domain': 'example.test' },
          summary: { 'total-successful-session-count': -1, 'total-failure-session-count': 0 },
        },
      ],
    }),
    /total-successful-session-count/,
  ],
  [
    'too many failure details',
    JSON.stringify({
      ...good,
      policies: [
        {
          policy: { 'policy-type': 'sts', 'policy-domain': 'example.test' },
          summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
          'failure-details': Array.from({ length: 10_001 }, () => ({
            'result-type': 'x',
            'failed-session-count': 1,
          })),
        },
      ],
    }),
    /failure-details/,
  ],
];
for (const [what, json, message] of refused) {
  test(`refuses ${what}`, () => {
    assert.throws(
      () => parseTlsReport(json),
      (err: Error) => {
        assert.ok(err instanceof ReportError, err.message);
        assert.match(err.message, message);
        return true;
      },
    );
  });
}
