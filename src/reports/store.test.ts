import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/db.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import { fixture } from '../../test/helpers/reports.ts';
import { parseDmarcReport } from './dmarc.ts';
import { insertReport, UNVERIFIED_PER_DAY } from './store.ts';

const receipt = (verified: boolean, sender = 'r@reporter.example') => ({
  message: 'q',
  sender,
  verified,
  receivedAt: Date.now(),
});

const rows = (db: ReturnType<typeof openDb>) =>
  (
    db.prepare('SELECT sender, verified FROM dmarc_reports').all() as {
      sender: string;
      verified: number;
    }[]
  ).map((r) => ({ ...r }));

test('a forged, unverified copy stored first gives way to the verified report of the same id; not the other way round', () => {
  const db = openDb(':memory:', MIGRATIONS);
  const report = parseDmarcReport(fixture('google-dmarc.xml'));
  const forged = { kind: 'dmarc' as const, report, receipt: receipt(false, 'mallory@evil.test') };
  const genuine = { kind: 'dmarc' as const, report, receipt: receipt(true, 'noreply@google.com') };
  assert.equal(insertReport(db, forged), 'stored');
  assert.equal(insertReport(db, genuine), 'stored');
  assert.deepEqual(rows(db), [{ sender: 'noreply@google.com', verified: 1 }]);
  const records = db.prepare('SELECT count(*) AS n FROM dmarc_records').get() as { n: number };
  assert.equal(records.n, report.records.length, "the forged copy's records went with it");
  assert.equal(insertReport(db, forged), 'duplicate');
  assert.equal(insertReport(db, genuine), 'duplicate');
});

test(`at most ${UNVERIFIED_PER_DAY} reports from unverified senders are kept a day; verified ones always`, () => {
  const db = openDb(':memory:', MIGRATIONS);
  const report = parseDmarcReport(fixture('google-dmarc.xml'));
  const nth = (i: number, verified: boolean) => ({
    kind: 'dmarc' as const,
    report: { ...report, reportId: `r${i}` },
    receipt: receipt(verified),
  });
  for (let i = 0; i < UNVERIFIED_PER_DAY; i++)
    assert.equal(insertReport(db, nth(i, false)), 'stored');
  assert.equal(insertReport(db, nth(UNVERIFIED_PER_DAY, false)), 'over-limit');
  assert.equal(insertReport(db, nth(UNVERIFIED_PER_DAY + 1, true)), 'stored');
});
