import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quoteTxt, reverseName } from './records.ts';

const reverse: [string, string][] = [
  ['192.0.2.1', '1.2.0.192.in-addr.arpa'],
  ['2001:db8::1', `1.0.0.0.${'0.'.repeat(20)}8.b.d.0.1.0.0.2.ip6.arpa`],
  ['::1', `1.${'0.'.repeat(31)}ip6.arpa`],
];
for (const [addr, want] of reverse) {
  test(`reverseName(${addr})`, () => assert.equal(reverseName(addr), want));
}

test('TXT values are split into quoted strings of at most 255 bytes', () => {
  const long = 'a'.repeat(600);
  const q = quoteTxt(long);
  const parts = [...q.matchAll(/"([^"]*)"/g)].map((m) => m[1] ?? '');
  assert.deepEqual(
    parts.map((p) => p.length),
    [255, 255, 90],
  );
  assert.equal(parts.join(''), long);
  assert.equal(quoteTxt('v=spf1 mx -all'), '"v=spf1 mx -all"');
});
