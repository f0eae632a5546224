import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../../db/db.ts';
import { MIGRATIONS } from '../../queue/spool.ts';
import { parseDmarcReport } from '../../reports/dmarc.ts';
import { insertReport } from '../../reports/store.ts';
import { reportSummary } from '../../reports/summary.ts';
import { parseTlsReport } from '../../reports/tlsrpt.ts';
import { fixture } from '../../../test/helpers/reports.ts';
import { reportsPage } from './reports-page.ts';

const view = { csrf: 'token', sandbox: false, account: null };
const receipt = (verified: boolean) => ({
  message: 'q',
  sender: 'r@reporter.example',
  verified,
  receivedAt: Date.now(),
});

test('the Reports page shows the summary, flags the failing source, and escapes what reporters wrote', async () => {
  const db = openDb(':memory:', MIGRATIONS);
  const xml = fixture('google-dmarc.xml').replace(
    '<org_name>google.com</org_name>',
    '<org_name>&lt;script&gt;alert(1)&lt;/script&gt;</org_name>',
  );
  insertReport(db, { kind: 'dmarc', report: parseDmarcReport(xml), receipt: receipt(false) });
  const tls = parseTlsReport(fixture('google-tlsrpt.json'));
  insertReport(db, { kind: 'tlsrpt', report: tls, receipt: receipt(true) });
  const page = String(await reportsPage(reportSummary(db, { days: 7 }), { days: 7 }, view));
  assert.match(page, /<title>Reports · posta<\/title>/);
  assert.match(page, /<a href="\/reports">Reports<\/a>/);
  assert.ok(!page.includes('<script>alert'), 'a reporter cannot put markup on the page');
  assert.match(page, /&lt;script&gt;alert\(1\)&lt;\/script&gt; \(sender not verified\)/);
  assert.match(page, /<strong class="error">5 failed DMARC<\/strong>/);
  assert.match(
    page,
    /<tr class="permanent">\s*<td><strong>! <\/strong><code>203\.0\.113\.66<\/code>/,
  );
  assert.match(page, /certificate-expired 3, starttls-not-supported 1/);
  const empty = String(
    await reportsPage(reportSummary(db, { days: 7, domain: 'x.test' }), { days: 7 }, view),
  );
  assert.match(empty, /No DMARC aggregate report yet/);
  assert.match(empty, /No TLS report yet/);
});
