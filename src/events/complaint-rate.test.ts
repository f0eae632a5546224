import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/db.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import { complaintRates } from './complaint-rate.ts';

const DAY = 86_400_000;
const now = Date.UTC(2026, 11, 3);

test('complaint rates per sending domain count the last 7 days only, per recipient, and flag 0.3%', () => {
  const db = openDb(':memory:', MIGRATIONS);
  const mail = db.prepare(
    `INSERT INTO mail_log (message, created_at, sender, api_key, tags, recipients, headers)
     VALUES (?, 0, ?, NULL, '{}', '[]', '[]')`,
  );
  const event = db.prepare(
    `INSERT INTO events (id, message, type, at, recipients, detail) VALUES (?, ?, ?, ?, ?, '{}')`,
  );
  mail.run('m1', 'news@Example.com');
  mail.run('m2', 'app@other.test');
  let id = 10;
  const add = (message: string, type: string, at: number, n: number) => {
    event.run(
      id,
      message,
      type,
      at,
      JSON.stringify(Array.from({ length: n }, (_, i) => `r${i}@x`)),
    );
    id += 3; // ids with gaps, as pruning leaves them
  };
  add('m1', 'Delivery', now - 9 * DAY, 5000); // before the window: not counted
  add('m1', 'Complaint', now - 8 * DAY, 40);
  add('m1', 'Delivery', now - 6 * DAY, 600);
  add('m1', 'Send', now - 6 * DAY, 600);
  add('m1', 'Delivery', now - DAY, 400);
  add('m1', 'Complaint', now - DAY, 3);
  add('m2', 'Delivery', now - DAY, 2000);
  add('m2', 'Complaint', now - DAY, 1);
  assert.deepEqual(complaintRates(db, now), [
    { domain: 'example.com', delivered: 1000, complaints: 3, rate: 0.003, over: true },
    { domain: 'other.test', delivered: 2000, complaints: 1, rate: 0.0005, over: false },
  ]);
  assert.deepEqual(complaintRates(db, now + 30 * DAY), [], 'nothing in the window');
  assert.deepEqual(complaintRates(openDb(':memory:', MIGRATIONS), now), [], 'no events at all');
});
