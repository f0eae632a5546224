import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyStore, newKeyId, parseResendToken, resendToken } from './keys.ts';
import { openQueueDb } from '../queue/spool.ts';

const id = 'AKPSABCDEFGHIJKLMNOP';

for (const [name, token, want] of [
  ['id and secret', `re_${id}_s3cr3t`, { id, secret: 's3cr3t' }],
  ['a secret holding "_" and "-"', `re_${id}_a_b-c_`, { id, secret: 'a_b-c_' }],
  ['no re_ prefix', `${id}_s3cr3t`, null],
  ['no secret', `re_${id}_`, null],
  ['an id of another shape', 're_AKPS123_s3cr3t', null],
  ['a lower-case id', `re_${id.toLowerCase()}_s3cr3t`, null],
  ['a secret with a space', `re_${id}_s3 cr3t`, null],
  ["one of Resend's own keys", 're_123456789_abcdefghijklmnopqrstuvwx', null],
] as const) {
  test(`parseResendToken: ${name}`, () => assert.deepEqual(parseResendToken(token), want));
}

test('resendToken and parseResendToken are inverses', () => {
  for (let i = 0; i < 50; i++) {
    const k = newKeyId();
    const secret = Buffer.from(String(Math.random())).toString('base64url');
    assert.deepEqual(parseResendToken(resendToken(k, secret)), { id: k, secret });
  }
});

test("no secret starts with '-', which command-line tools would take for an option", async () => {
  const store = new KeyStore(openQueueDb(await mkdtemp(join(tmpdir(), 'keys-'))));
  for (let i = 0; i < 400; i++) {
    const { secret } = store.create({
      name: `k${i}`,
      domains: ['example.test'],
      rate: 1,
      daily: 1,
    });
    assert.match(secret, /^[A-Za-z0-9_][A-Za-z0-9_-]{39}$/);
  }
});
