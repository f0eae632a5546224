/**
 * SRS under arbitrary input: forward then reverse gives back the original
 * address (once and twice forwarded), for any valid address and secret;
 * reverse never throws and never accepts an address it did not make.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Srs } from '../../src/srs/srs.ts';
import { budget } from './budget.ts';

const secretArb = fc.uint8Array({ minLength: 1, maxLength: 32 }).map((a) => Buffer.from(a));
const nowArb = fc.integer({ min: 0, max: 4102444800000 });

test('forward then reverse gives back any valid address', () => {
  fc.assert(
    fc.property(secretArb, nowArb, fc.emailAddress(), (secret, now, sender) => {
      const srs = new Srs(secret, () => now);
      const fwd = srs.forward(sender, 'forwarder.test');
      assert.match(fwd, /@forwarder\.test$/);
      const back = srs.reverse(fwd);
      assert.ok(back.ok, `${fwd}: ${back.ok ? '' : back.reason}`);
      assert.equal(back.address.toLowerCase(), sender.toLowerCase(), fwd);
    }),
    budget(500),
  );
});

test('forwarded twice: the second forwarder reverses to the first one SRS0 address', () => {
  fc.assert(
    fc.property(secretArb, secretArb, nowArb, fc.emailAddress(), (s1, s2, now, sender) => {
      const first = new Srs(s1, () => now);
      const second = new Srs(s2, () => now);
      const hop1 = first.forward(sender, 'one.test');
      const hop2 = second.forward(hop1, 'two.test');
      const back2 = second.reverse(hop2);
      assert.ok(back2.ok, `${hop2}: ${back2.ok ? '' : back2.reason}`);
      const back1 = first.reverse(back2.address);
      assert.ok(back1.ok, `${back2.address}: ${back1.ok ? '' : back1.reason}`);
      assert.equal(back1.address.toLowerCase(), sender.toLowerCase());
    }),
    budget(300),
  );
});

test('reverse: arbitrary input never throws, and is never accepted without the secret', () => {
  const srs = new Srs(Buffer.from('a secret'), () => 1_700_000_000_000);
  const srsLike = fc
    .tuple(
      fc.constantFrom('SRS0', 'srs0', 'SRS1', 'srs1', 'SRS0+', 'x'),
      fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('=', '==', '@')), {
        maxLength: 8,
      }),
    )
    .map(([p, parts]) => `${p}=${parts.join('=')}`);
  fc.assert(
    fc.property(fc.oneof(fc.string({ unit: 'binary' }), srsLike), (input) => {
      const r = srs.reverse(input);
      if (r.ok) assert.fail(`accepted a forged address: ${input} -> ${r.address}`);
      assert.equal(typeof r.reason, 'string');
    }),
    budget(1000),
  );
});
