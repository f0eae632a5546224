import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isToken, loadUnsubscribeSecret, TOKEN_LENGTH, unsubscribeToken } from './token.ts';
import { unsubscribeAddressToken } from './mailto.ts';
import { isOneClick } from './endpoint.ts';

const secret = Buffer.alloc(32, 7);
const other = Buffer.alloc(32, 8);
const t = (d: string, a: string, s = secret) => unsubscribeToken(s, d, a);

test('a token is fixed for its (domain, recipient) and differs for any other', () => {
  const base = t('example.com', 'ada@dest.test');
  const cases: [string, string, boolean][] = [
    [t('example.com', 'ada@dest.test'), 'the same pair', true],
    [t('EXAMPLE.com', 'Ada@Dest.TEST'), 'the same pair in other case', true],
    [t('example.org', 'ada@dest.test'), 'another sending domain', false],
    [t('example.com', 'bob@dest.test'), 'another recipient', false],
    [t('example.comada', '@dest.test'), 'the same characters split elsewhere', false],
    [t('example.com', 'ada@dest.test', other), 'another secret', false],
  ];
  for (const [token, what, same] of cases) assert.equal(token === base, same, what);
});

test('a token fits a local part and the token pattern, and survives case folding', () => {
  const token = t('example.com', 'ada@dest.test');
  assert.equal(token.length, TOKEN_LENGTH);
  assert.match(token, /^[a-z2-7]+$/);
  assert.ok(`unsubscribe+${token}`.length <= 64, 'RFC 5321 §4.5.3.1.1');
  assert.ok(isToken(token) && isToken(token.toUpperCase()));
  assert.equal(unsubscribeAddressToken(`Unsubscribe+${token.toUpperCase()}@example.com`), token);
  const bad = ['', 'x', `${token}a`, token.slice(1), `${token.slice(1)}1`, '../../etc/passwd'];
  for (const b of bad) assert.equal(isToken(b), false, b);
  assert.equal(unsubscribeAddressToken(`unsubscribe@example.com`), null);
  assert.equal(unsubscribeAddressToken(`unsubscribe+${token}x@example.com`), null);
});

test('the secret is made once in the data folder, 0600, and read back', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-unsub-'));
  const a = await loadUnsubscribeSecret(dir);
  const b = await loadUnsubscribeSecret(dir);
  assert.equal(a.length, 32);
  assert.deepEqual(a, b);
  assert.equal((await stat(join(dir, 'unsubscribe.key'))).mode & 0o777, 0o600);
  assert.equal((await readFile(join(dir, 'unsubscribe.key'), 'utf8')).trim(), a.toString('base64'));
});

test('the one-click body, as RFC 8058 §3.2 gives it, in either form encoding', () => {
  const multipart =
    '--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n';
  const cases: [string, string, boolean][] = [
    ['application/x-www-form-urlencoded', 'List-Unsubscribe=One-Click', true],
    ['application/x-www-form-urlencoded', 'List-Unsubscribe=One-Click&x=1', true],
    ['multipart/form-data; boundary=b', multipart, true],
    ['application/x-www-form-urlencoded', '', false],
    ['application/x-www-form-urlencoded', 'List-Unsubscribe=one-click', false],
    ['multipart/form-data; boundary=b', multipart.replace('One-Click', 'No'), false],
  ];
  for (const [type, body, ok] of cases) assert.equal(isOneClick(type, body), ok, body);
});
