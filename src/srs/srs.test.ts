import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Srs, isSrs } from './srs.ts';

const secret = Buffer.from('0123456789abcdef0123456789abcdef');
const day = 86400_000;
const at = (t: number) => new Srs(secret, () => t);
const now = Date.UTC(2026, 10, 27);

test('srs: a forwarded sender reverses to the original, also lower-cased', () => {
  const a = at(now).forward('Alice.Smith@Origin.example', 'example.com');
  assert.match(a, /^SRS0=[a-z2-7]{8}=[a-z2-7]{2}=origin\.example=Alice\.Smith@example\.com$/);
  assert.deepEqual(at(now).reverse(a), { ok: true, address: 'Alice.Smith@origin.example' });
  assert.deepEqual(at(now).reverse(a.toLowerCase()), {
    ok: true,
    address: 'alice.smith@origin.example',
  });
  assert.ok(isSrs(a.slice(0, a.indexOf('@'))));
});

test('srs: forwarding an SRS0 address again gives SRS1 pointing at the first forwarder', () => {
  const first = new Srs(Buffer.from('another secret, the first hop...'), () => now);
  const srs0 = first.forward('bob@origin.example', 'first.example');
  const srs1 = at(now).forward(srs0, 'example.com');
  assert.match(
    srs1,
    /^SRS1=[a-z2-7]{8}=first\.example==[a-z2-7]{8}=[a-z2-7]{2}=origin\.example=bob@example\.com$/,
  );
  const back = at(now).reverse(srs1);
  assert.deepEqual(back, { ok: true, address: srs0 });
  assert.deepEqual(first.reverse(srs0), { ok: true, address: 'bob@origin.example' });
});

const bad: [string, (a: string) => string, Srs, RegExp][] = [
  [
    'a changed original address',
    (a) => a.replace('=carol@', '=mallory@'),
    at(now),
    /hash is wrong/,
  ],
  ['a changed hash', (a) => a.replace(/^SRS0=[a-z2-7]{4}/, 'SRS0=aaaa'), at(now), /hash is wrong/],
  [
    'another secret',
    (a) => a,
    new Srs(Buffer.from('not the same secret at all!!!!!!'), () => now),
    /hash is wrong/,
  ],
  ['older than 21 days', (a) => a, at(now + 22 * day), /expired/],
  ['not SRS at all', () => 'carol@example.com', at(now), /not an SRS address/],
];

for (const [name, change, srs, why] of bad) {
  test(`srs: refused: ${name}`, () => {
    const a = at(now).forward('carol@origin.example', 'example.com');
    const r = srs.reverse(change(a));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.reason, why);
  });
}

test('srs: a sender of the forwarding domain itself is kept', () => {
  assert.equal(at(now).forward('me@example.com', 'example.com'), 'me@example.com');
});
