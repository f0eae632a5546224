import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openQueueDb } from '../queue/spool.ts';
import { runSqlite } from '../store/statement.ts';
import { acceptedCount, attemptCount, destinations, statsRetention, statSeries } from './stats.ts';

test('outcomes are counted per minute and read back per minute and per hour, by destination', async () => {
  const db = openQueueDb(await mkdtemp(join(tmpdir(), 'stats-')));
  const now = Date.UTC(2026, 11, 2, 12, 30, 15);
  const min = 60_000;
  runSqlite(db, acceptedCount(now));
  runSqlite(db, acceptedCount(now - 5 * min));
  runSqlite(db, attemptCount({ at: now, outcome: 'delivered', recipient: 'a@Gmail.com' }));
  runSqlite(
    db,
    attemptCount({ at: now - 5 * min, outcome: 'transient', recipient: 'b@outlook.com' }),
  );
  runSqlite(
    db,
    attemptCount({ at: now - 5 * min, outcome: 'permanent', recipient: 'c@example.org' }),
  );
  runSqlite(
    db,
    attemptCount({ at: now - 3 * 3600_000, outcome: 'expired', recipient: 'd@example.org' }),
  );

  const hour = statSeries(db, min, 60, now);
  assert.equal(hour.t.length, 60);
  assert.equal(hour.t.at(-1), Math.floor(now / min) * 60);
  assert.deepEqual(hour.counts.accepted.slice(-6), [1, 0, 0, 0, 0, 1]);
  assert.equal(
    hour.counts.bounced.reduce((a, b) => a + b),
    1,
  );

  const week = statSeries(db, 3600_000, 168, now);
  assert.equal(week.counts.accepted.at(-1), 2);
  assert.equal(week.counts.deferred.at(-1), 1);
  assert.equal(week.counts.bounced.at(-1), 1);
  assert.equal(week.counts.bounced.at(-4), 1);

  const d = destinations(db, now - 86400_000);
  assert.deepEqual(
    d.map((x) => x.class),
    ['google', 'microsoft', 'yahoo', 'apple', 'other'],
  );
  assert.deepEqual(d[0], { class: 'google', delivered: 1, deferred: 0, bounced: 0 });
  assert.deepEqual(d[1], { class: 'microsoft', delivered: 0, deferred: 1, bounced: 0 });
  assert.deepEqual(d[4], { class: 'other', delivered: 0, deferred: 0, bounced: 2 });

  runSqlite(db, statsRetention(now - 3600_000));
  assert.equal(statSeries(db, 3600_000, 168, now).counts.bounced.at(-4), 0);
  db.close();
});
