import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Report } from '../../doctor/report.ts';
import { ERROR_TTL_MS, HealthCache, TTL_MS } from './health.ts';

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

test('a failed run is checked again after ERROR_TTL_MS; at most four domains are checked at once', async () => {
  let now = 1_000_000;
  let fail = true;
  let running = 0;
  let most = 0;
  const cache = new HealthCache({
    now: () => now,
    check: async (d) => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setImmediate(r));
      running--;
      if (fail) throw new Error('timeout');
      return report(d);
    },
  });
  const domains = Array.from({ length: 10 }, (_, i) => `d${i}.test`);
  const first = await cache.of(domains);
  assert.ok(first.every((h) => h.error === 'timeout'));
  assert.equal(most, 4);
  fail = false;
  now += ERROR_TTL_MS - 1;
  assert.ok(
    (await cache.of(domains)).every((h) => h.error === 'timeout'),
    'still kept',
  );
  now += 1;
  assert.ok((await cache.of(domains)).every((h) => h.error === undefined && h.failures === 1));
});
