import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/db.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import { runSqlite } from '../store/statement.ts';
import { warmupCount, Warmup } from './warmup.ts';
import type { WarmupConfig } from '../config/load.ts';

const w: WarmupConfig = { sender: 'example.com', start: '2026-12-01', schedule: [3, 10, 20] };
const at = (iso: string) => Date.parse(iso);

test("take() gives room up to the day's limit per destination, jobs in flight included; settle() counts what was delivered", () => {
  const db = openDb(':memory:', MIGRATIONS);
  const c = new Warmup(db, [w]);
  const now = at('2026-12-01T10:00:00Z');
  const a = c.take('i@example.com', 'gmail.com', 2, now);
  assert.equal(a?.allowed, 2);
  assert.equal(a?.destination, 'google');
  const b = c.take('i@example.com', 'googlemail.com', 5, now);
  assert.equal(b?.allowed, 1, 'gmail.com and googlemail.com share google');
  assert.match(
    b?.reason ?? '',
    /^warm-up of example\.com: day 1 allows 3 messages to google, all taken; waiting until 2026-12-02T00:00:00\.000Z$/,
  );
  assert.equal(b?.until, at('2026-12-02T00:00:00Z'));
  assert.equal(c.take('i@example.com', 'example.org', 5, now)?.allowed, 3, 'another destination');
  // one of a's two was deferred: its room is free again
  if (a) c.settle(a, 1);
  assert.equal(c.take('i@example.com', 'gmail.com', 5, now)?.allowed, 1);
  assert.deepEqual(c.status(now)[0]?.today, { google: 1 });
  assert.equal(c.take('i@example.org', 'gmail.com', 5, now), null, 'no warm-up for that sender');
  // the next day, the next day's limit
  assert.equal(c.take('i@example.com', 'gmail.com', 50, at('2026-12-02T00:00:01Z'))?.allowed, 10);
  // and after the last day, none
  assert.equal(c.take('i@example.com', 'gmail.com', 50, at('2026-12-04T00:00:00Z')), null);
});

test("today's counts come back from the database after a restart", () => {
  const db = openDb(':memory:', MIGRATIONS);
  const now = at('2026-12-02T10:00:00Z');
  const today = Math.floor(now / 86_400_000);
  runSqlite(db, warmupCount({ sender: 'example.com', destination: 'google', day: today, n: 4 }));
  runSqlite(db, warmupCount({ sender: 'example.com', destination: 'google', day: today, n: 3 }));
  runSqlite(
    db,
    warmupCount({ sender: 'example.com', destination: 'google', day: today - 1, n: 3 }),
  );
  const c = new Warmup(db, [w]);
  assert.equal(c.take('i@example.com', 'gmail.com', 50, now)?.allowed, 3, '10 on day 2, 7 used');
  assert.deepEqual(c.status(now), [
    {
      sender: 'example.com',
      start: '2026-12-01',
      state: 'active',
      day: 2,
      days: 3,
      limit: 10,
      today: { google: 7 },
    },
  ]);
});
