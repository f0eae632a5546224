import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Report } from '../../doctor/report.ts';
import { HealthCache, TTL_MS } from './health.ts';

const report = (domain: string): Report => ({
  domain,
  ok: false,
  checks: [
    { id: 'mx', status: 'fail', title: 'MX', detail: 'none', fix: 'publish one' },
    { id: 'spf', status: 'warn', title: 'SPF', detail: '~all', fix: 'use -all' },
    { id: 'dmarc', status: 'warn', title: 'DMARC', detail: 'p=none', fix: 'p=reject' },
    { id: 'ptr', status: 'pass', title: 'PTR', detail: 'ok' },
  ],
});

test('counts failures and warnings, and checks again only after the TTL', async () => {
  let now = 1_000_000;
  const runs: string[] = [];
  const cache = new HealthCache({
    now: () => now,
    check: (d) => {
      runs.push(d);
      return Promise.resolve(report(d));
    },
  });
  const first = await cache.of(['a.test', 'b.test']);
  assert.deepEqual(
    first.map((h) => ({ ...h })),
    [
      { domain: 'a.test', at: now, failures: 1, warnings: 2 },
      { domain: 'b.test', at: now, failures: 1, warnings: 2 },
    ],
  );
  now += TTL_MS - 1;
  await cache.of(['a.test', 'b.test']);
  assert.deepEqual(runs, ['a.test', 'b.test']);
  now += 1;
  await cache.of(['a.test']);
  assert.deepEqual(runs, ['a.test', 'b.test', 'a.test']);
});

test('two pages at once share one run; a failed run is kept as its error', async () => {
  let release = () => {};
  let runs = 0;
  const cache = new HealthCache({
    check: async () => {
      runs++;
      await new Promise<void>((r) => (release = r));
      throw new Error('no DNS server answered');
    },
  });
  const one = cache.of(['a.test']);
  const two = cache.of(['a.test']);
  release();
  const [[a], [b]] = await Promise.all([one, two]);
  assert.equal(runs, 1);
  assert.equal(a?.error, 'no DNS server answered');
  assert.equal(b, a);
  await cache.of(['a.test']);
  assert.equal(runs, 1);
});
