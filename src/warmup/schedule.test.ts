import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  destinationOf,
  nextDay,
  warmupDay,
  warmupLine,
  warmupOf,
  type WarmupDay,
} from './schedule.ts';
import type { WarmupConfig } from '../config/load.ts';

const w: WarmupConfig = { sender: 'example.com', start: '2026-12-01', schedule: [3, 10, 20] };
const at = (iso: string) => Date.parse(iso);

const days: [string, string, WarmupDay][] = [
  [
    'the day before its start',
    '2026-11-30T23:59:59Z',
    { state: 'pending', day: 0, days: 3, limit: 3 },
  ],
  ['a month before', '2026-11-01T12:00:00Z', { state: 'pending', day: -29, days: 3, limit: 3 }],
  ['its first second', '2026-12-01T00:00:00Z', { state: 'active', day: 1, days: 3, limit: 3 }],
  ['the end of day 1', '2026-12-01T23:59:59.999Z', { state: 'active', day: 1, days: 3, limit: 3 }],
  ['day 2', '2026-12-02T00:00:00Z', { state: 'active', day: 2, days: 3, limit: 10 }],
  ['the last day', '2026-12-03T18:00:00Z', { state: 'active', day: 3, days: 3, limit: 20 }],
  ['the day after: done', '2026-12-04T00:00:00Z', { state: 'done', day: 4, days: 3, limit: null }],
  ['a year later', '2027-12-04T00:00:00Z', { state: 'done', day: 369, days: 3, limit: null }],
];
for (const [name, now, want] of days) {
  test(`warm-up day: ${name}`, () => assert.deepEqual(warmupDay(w, at(now)), want));
}

test('a destination is the mailbox provider for its domains, else the recipient domain', () => {
  for (const [domain, want] of [
    ['gmail.com', 'google'],
    ['googlemail.com', 'google'],
    ['outlook.com', 'microsoft'],
    ['hotmail.co.uk', 'microsoft'],
    ['yahoo.co.jp', 'yahoo'],
    ['icloud.com', 'apple'],
    ['example.org', 'example.org'],
  ]) {
    assert.equal(destinationOf(domain ?? ''), want, domain);
  }
});

test("a sender's warm-up is its address's, else its domain's; none for the null sender", () => {
  const byAddress = { sender: 'news@example.com', start: '2026-12-01', schedule: [1] };
  const m = new Map([
    ['example.com', w],
    ['news@example.com', byAddress],
  ]);
  assert.equal(warmupOf(m, 'News@Example.COM'), byAddress);
  assert.equal(warmupOf(m, 'i@EXAMPLE.com'), w);
  assert.equal(warmupOf(m, 'i@sub.example.com'), undefined, 'a subdomain is another sender');
  assert.equal(warmupOf(m, 'i@example.org'), undefined);
  assert.equal(warmupOf(m, ''), undefined);
});

test('held recipients wait until the next UTC day', () => {
  assert.equal(nextDay(at('2026-12-01T13:14:15Z')), at('2026-12-02T00:00:00Z'));
  assert.equal(nextDay(at('2026-12-01T00:00:00Z')), at('2026-12-02T00:00:00Z'));
});

test("the status line says the day, today's limit and what was sent", () => {
  const base = { sender: 'example.com', start: '2026-12-01', days: 3 };
  assert.equal(
    warmupLine({ ...base, state: 'active', day: 2, limit: 10, today: { google: 10, 'a.org': 1 } }),
    'day 2 of 3: 10 a day per destination; sent today: a.org 1, google 10 (full)',
  );
  assert.equal(
    warmupLine({ ...base, state: 'pending', day: 0, limit: 3, today: {} }),
    "starts 2026-12-01 (3 days); until then day 1's 3 a day per destination; nothing sent today",
  );
  assert.equal(
    warmupLine({ ...base, state: 'done', day: 9, limit: null, today: {} }),
    'done (3 days from 2026-12-01), no limit; nothing sent today',
  );
});
