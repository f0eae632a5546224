import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle } from './throttle.ts';

test('ten failures from one address block it for a minute, not its neighbours', () => {
  let now = 0;
  const t = new AuthThrottle(() => now);
  for (let i = 0; i < 10; i++) t.fail('192.0.2.1', `user${i}@example.test`);
  assert.equal(t.blocked('192.0.2.1', 'other@example.test'), true);
  assert.equal(t.blocked('192.0.2.2', 'other@example.test'), false);
  now += 61_000;
  assert.equal(t.blocked('192.0.2.1', 'other@example.test'), false);
});

test('a /24 gets 30 failures across its addresses', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 30; i++) t.fail(`198.51.100.${i}`, `u${i}@example.test`);
  assert.equal(t.blocked('198.51.100.200', 'fresh@example.test'), true);
  assert.equal(t.blocked('198.51.101.1', 'fresh@example.test'), false);
});

test('an account is protected against guesses from many networks', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 20; i++) t.fail(`10.${i}.0.1`, 'i@example.test');
  assert.equal(t.blocked('203.0.113.9', 'I@example.test'), true);
  assert.equal(t.blocked('203.0.113.9', 'you@example.test'), false);
});

test('IPv6 clients are counted per /64', () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 10; i++) t.fail(`2001:db8:1:2::${i}`, `u${i}`);
  assert.equal(t.blocked('2001:db8:1:2:ffff::1', 'x'), true);
  assert.equal(t.blocked('2001:db8:1:3::1', 'x'), false);
});
