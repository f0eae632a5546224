import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scryptSync } from 'node:crypto';
import { hashPassword, isPasswordHash, needsRehash, verifyPassword } from './hash.ts';

const fast = { m: 1024, t: 1, p: 1 };

test('a hash verifies its own password and no other', async () => {
  const h = await hashPassword('correct horse', fast);
  assert.ok(isPasswordHash(h));
  assert.equal(await verifyPassword('correct horse', h), true);
  assert.equal(await verifyPassword('correct hors', h), false);
  assert.equal(await verifyPassword('', h), false);
});

test('the default is argon2id at OWASP strength and the password is not in the hash', async () => {
  const h = await hashPassword('s3cret-pass');
  assert.match(h, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  assert.ok(!h.includes('s3cret-pass'));
  assert.equal(await verifyPassword('s3cret-pass', h), true);
  assert.equal(needsRehash(h), false);
});

test('an older scrypt hash still verifies and is marked for rehashing', async () => {
  const salt = Buffer.from('0123456789abcdef');
  const key = scryptSync('old-pass', salt, 32, { N: 1024, r: 8, p: 1 });
  const h = `$scrypt$ln=10,r=8,p=1$${salt.toString('base64url')}$${key.toString('base64url')}`;
  assert.ok(isPasswordHash(h));
  assert.equal(await verifyPassword('old-pass', h), true);
  assert.equal(await verifyPassword('old-pas', h), false);
  assert.equal(needsRehash(h), true);
  assert.equal(needsRehash(await hashPassword('x', fast)), true, 'other argon2 parameters');
});

test('two hashes of one password differ (random salt)', async () => {
  assert.notEqual(await hashPassword('x', fast), await hashPassword('x', fast));
});

test('unicode passwords are compared in NFC', async () => {
  const h = await hashPassword('caf\u00e9', fast);
  assert.equal(await verifyPassword('cafe\u0301', h), true);
});

for (const bad of [
  '',
  'plain',
  '$scrypt$ln=17,r=8,p=1$abc',
  '$scrypt$ln=40,r=8,p=1$YWJj$YWJj',
  '$argon2id$v=19$m=9999999,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg',
  '$argon2id$v=19$m=4,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg',
  '$argon2i$v=19$m=19456,t=2,p=1$MDEyMzQ1Njc4OWFiY2RlZg$MDEyMzQ1Njc4OWFiY2RlZg',
]) {
  test(`a malformed hash ${JSON.stringify(bad)} never verifies`, async () => {
    assert.equal(await verifyPassword('plain', bad), false);
  });
}
