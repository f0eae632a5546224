import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle, PER_ACCOUNT, TRUST_MS, type Attempt } from './throttle.ts';

async function attempt(t: AuthThrottle, ip: string, account: string): Promise<Attempt> {
  const a = await t.begin(ip, account);
  assert.ok(a && a !== 'busy', `${ip} ${account} may try`);
  return a;
}
/** A failed attempt: begun, and its slots kept. */
const fail = async (t: AuthThrottle, ip: string, account: string) =>
  (await attempt(t, ip, account)).failed();
/** Whether this client may not try now (an attempt it may make is given back). */
async function blocked(t: AuthThrottle, ip: string, account: string): Promise<boolean> {
  const a = await t.begin(ip, account);
  if (a && a !== 'busy') a.cancelled();
  return a === null;
}

test('ten failures from one address block it for a minute, not its neighbours', async () => {
  let now = 0;
  const t = new AuthThrottle(() => now);
  for (let i = 0; i < 10; i++) await fail(t, '192.0.2.1', `user${i}@example.test`);
  assert.equal(await blocked(t, '192.0.2.1', 'other@example.test'), true);
  assert.equal(await blocked(t, '192.0.2.2', 'other@example.test'), false);
  now += 61_000;
  assert.equal(await blocked(t, '192.0.2.1', 'other@example.test'), false);
});

test('a /24 gets 30 failures across its addresses', async () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 30; i++) await fail(t, `198.51.100.${i}`, `u${i}@example.test`);
  assert.equal(await blocked(t, '198.51.100.200', 'fresh@example.test'), true);
  assert.equal(await blocked(t, '198.51.101.1', 'fresh@example.test'), false);
});

test('an account is protected against guesses from many networks', async () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < PER_ACCOUNT; i++) await fail(t, `10.${i}.0.1`, 'i@example.test');
  assert.equal(await blocked(t, '203.0.113.9', 'I@example.test'), true);
  assert.equal(await blocked(t, '203.0.113.9', 'you@example.test'), false);
});

test('IPv6 clients are counted per /64', async () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 10; i++) await fail(t, `2001:db8:1:2::${i}`, `u${i}`);
  assert.equal(await blocked(t, '2001:db8:1:2:ffff::1', 'x'), true);
  assert.equal(await blocked(t, '2001:db8:1:3::1', 'x'), false);
});

test('attempts count from their start: parallel ones cannot overrun a limit', async () => {
  const t = new AuthThrottle(() => 0);
  const started = Array.from({ length: 100 }, (_, i) => t.begin(`10.1.${i}.1`, 'i@example.test'));
  // the first PER_ACCOUNT hold the limit; the others wait for them to end
  const first = await Promise.all(started.slice(0, PER_ACCOUNT));
  for (const a of first) assert.ok(a && a !== 'busy');
  for (const a of first) (a as Attempt).failed();
  const rest = await Promise.all(started.slice(PER_ACCOUNT));
  assert.equal(rest.filter((a) => a !== null).length, 0, 'all refused once those failed');
});

test('parallel logins with the right password are not refused: they wait their turn', async () => {
  const t = new AuthThrottle(() => 0);
  const started = Array.from({ length: 20 }, () => t.begin('192.0.2.7', 'i@example.test'));
  let ok = 0;
  await Promise.all(
    started.map(async (p) => {
      const a = await p;
      assert.ok(a && a !== 'busy');
      ok++;
      await Promise.resolve();
      a.succeeded();
    }),
  );
  assert.equal(ok, 20);
});

test('a success gives its slot back; a cancelled attempt too', async () => {
  const t = new AuthThrottle(() => 0);
  for (let i = 0; i < 30; i++) (await attempt(t, '192.0.2.7', 'i@example.test')).succeeded();
  for (let i = 0; i < 30; i++) (await attempt(t, '192.0.2.8', 'i@example.test')).cancelled();
  assert.equal(await blocked(t, '192.0.2.9', 'i@example.test'), false);
});

test('a source that logged in before is not held to the account limit, for TRUST_MS', async () => {
  let now = 0;
  const t = new AuthThrottle(() => now);
  (await attempt(t, '192.0.2.7', 'i@example.test')).succeeded();
  for (let i = 0; i < PER_ACCOUNT; i++) await fail(t, `10.${i}.0.1`, 'i@example.test');
  assert.equal(
    await blocked(t, '203.0.113.9', 'i@example.test'),
    true,
    'a fresh source is throttled',
  );
  assert.equal(await blocked(t, '192.0.2.7', 'i@example.test'), false, 'the owner logs in');
  assert.equal(await blocked(t, '192.0.2.99', 'i@example.test'), false, 'so does the same /24');
  assert.equal(await blocked(t, '192.0.2.7', 'you@example.test'), false);
  // the per-source limits still hold for it
  for (let i = 0; i < 10; i++) await fail(t, '192.0.2.7', 'i@example.test');
  assert.equal(await blocked(t, '192.0.2.7', 'i@example.test'), true);
  now += TRUST_MS + 1;
  for (let i = 0; i < PER_ACCOUNT; i++) await fail(t, `10.${i}.0.1`, 'i@example.test');
  assert.equal(await blocked(t, '192.0.2.7', 'i@example.test'), true, 'trust is forgotten');
});
