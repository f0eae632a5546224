import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle, PER_ACCOUNT, TRUST_MS } from './throttle.ts';

// A failed attempt: begun and never released.
const fail = (t: AuthThrottle, ip: string, account: string) =>
  assert.ok(t.begin(ip, account), `${ip} ${account} may try`);
const blocked = (t: AuthThrottle, ip: string, account: string) => t.begin(ip, account) === null;

test('ten failures from one address block it for a minute, not its neighbours', () => {
  let now = 0;
  const t = new AuthThrottle(() => now);
  for (let i = 0; i < 10; i++) fail(t, '192.0.2.1', `user${i}@example.test`);
  assert.equal(blocked(t, '192.0.2.1', 'other@example.test'), true);
  assert.equal(blocked(t, '192.0.2.2', 'other@example.test'), false);
  now += 61_000;
  assert.equal(blocked(t, '192.0.2.1', 'other@example.test'), false);
});

test('a /24 gets 30 failures across its addresses', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 30; i++) fail(t, `198.51.100.${i}`, `u${i}@example.test`);
  assert.equal(blocked(t, '198.51.100.200', 'fresh@example.test'), true);
  assert.equal(blocked(t, '198.51.101.1', 'fresh@example.test'), false);
});

test('an account is protected against guesses from many networks', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < PER_ACCOUNT; i++) fail(t, `10.${i}.0.1`, 'i@example.test');
  assert.equal(blocked(t, '203.0.113.9', 'I@example.test'), true);
  assert.equal(blocked(t, '203.0.113.9', 'you@example.test'), false);
});

test('IPv6 clients are counted per /64', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 10; i++) fail(t, `2001:db8:1:2::${i}`, `u${i}`);
  assert.equal(blocked(t, '2001:db8:1:2:ffff::1', 'x'), true);
  assert.equal(blocked(t, '2001:db8:1:3::1', 'x'), false);
});

test('attempts count from their start: parallel ones cannot overrun a limit', () => {
  const t = new AuthThrottle(() => 0);
  const started = Array.from({ length: 100 }, (_, i) => t.begin(`10.1.${i}.1`, 'i@example.test'));
  assert.equal(started.filter(Boolean).length, PER_ACCOUNT);
});

test('a success gives its slot back; a cancelled attempt too', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 30; i++) t.begin('192.0.2.7', 'i@example.test')?.succeeded();
  for (let i = 0; i < 30; i++) t.begin('192.0.2.8', 'i@example.test')?.cancelled();
  assert.equal(blocked(t, '192.0.2.9', 'i@example.test'), false);
});

test('a source that logged in before is not held to the account limit, for TRUST_MS', () => {
  let now = 0;
  const t = new AuthThrottle(() => now);
  t.begin('192.0.2.7', 'i@example.test')?.succeeded();
  for (let i = 0; i < PER_ACCOUNT; i++) fail(t, `10.${i}.0.1`, 'i@example.test');
  assert.equal(blocked(t, '203.0.113.9', 'i@example.test'), true, 'a fresh source is throttled');
  assert.equal(blocked(t, '192.0.2.7', 'i@example.test'), false, 'the owner logs in');
  assert.equal(blocked(t, '192.0.2.99', 'i@example.test'), false, 'so does the same /24');
  assert.equal(blocked(t, '192.0.2.7', 'you@example.test'), false);
  // the per-source limits still hold for it
  for (let i = 0; i < 8; i++) fail(t, '192.0.2.7', 'i@example.test');
  assert.equal(blocked(t, '192.0.2.7', 'i@example.test'), true);
  now += TRUST_MS + 1;
  for (let i = 0; i < PER_ACCOUNT; i++) fail(t, `10.${i}.0.1`, 'i@example.test');
  assert.equal(blocked(t, '192.0.2.7', 'i@example.test'), true, 'trust is forgotten');
});
