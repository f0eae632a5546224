import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/db.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import { Quotas } from './quota.ts';
import { countSend } from './usage.ts';
import type { ApiKey } from './keys.ts';

const key = (rate: number, daily: number): ApiKey => ({
  id: 'AKPSAAAAAAAAAAAAAAAA',
  name: 'k',
  domains: ['example.test'],
  rate,
  daily,
  createdAt: 0,
  revokedAt: null,
});

test('sends in flight count toward the day: two at once cannot pass the limit together', () => {
  const db = openDb(':memory:', MIGRATIONS);
  const q = new Quotas(db);
  const k = key(100, 3);
  assert.equal(q.take(k, 2, 1000), null);
  // not committed yet: the database still says 0
  assert.equal(q.take(k, 2, 1001)?.kind, 'daily');
  // committed: the database counts it, and it is no longer in flight
  countSend(db, k.id, 2, 1002);
  q.settled(k, 2);
  assert.equal(q.take(k, 1, 1003), null, 'what still fits goes');
  q.giveBack(k, 1);
  assert.equal(q.take(k, 1, 1004), null, 'given back, it fits again');
});

test('the rate: a send starts while a token is left, and takes one per recipient', () => {
  const q = new Quotas(openDb(':memory:', MIGRATIONS));
  const k = key(2, 1000);
  assert.equal(q.take(k, 5, 0), null, 'a message to 5 under a rate of 2 passes once');
  assert.equal(q.take(k, 1, 100)?.kind, 'rate');
  assert.equal(q.take(k, 1, 2100), null, 'the debt is paid after 2 s');
});
