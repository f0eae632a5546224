import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashPassword, isPasswordHash, verifyPassword } from './hash.ts';

const fast = { ln: 10, r: 8, p: 1 };

test('a hash verifies its own password and no other', async () => {
  const h = await hashPassword('correct horse', fast);
  assert.ok(isPasswordHash(h));
  assert.equal(await verifyPassword('correct horse', h), true);
  assert.equal(await verifyPassword('correct hors', h), false);
  assert.equal(await verifyPassword('', h), false);
});

test('the default parameters are OWASP strength and the password is not in the hash', async () => {
  const h = await hashPassword('s3cret-pass');
  assert.match(h, /^\$scrypt\$ln=14,r=8,p=5\$/);
  assert.ok(!h.includes('s3cret-pass'));
  assert.equal(await verifyPassword('s3cret-pass', h), true);
});

test('two hashes of one password differ (random salt)', async () => {
  assert.notEqual(await hashPassword('x', fast), await hashPassword('x', fast));
});

test('unicode passwords are compared in NFC', async () => {
  const h = await hashPassword('caf\u00e9', fast);
  assert.equal(await verifyPassword('cafe\u0301', h), true);
});

for (const bad of ['', 'plain', '$scrypt$ln=17,r=8,p=1$abc', '$scrypt$ln=40,r=8,p=1$YWJj$YWJj']) {
  test(`a malformed hash ${JSON.stringify(bad)} never verifies`, async () => {
    assert.equal(await verifyPassword('plain', bad), false);
  });
}
