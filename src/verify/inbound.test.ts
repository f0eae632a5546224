import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stripForgedResults } from './inbound.ts';

const body = '\r\nhello\r\n';
const cases: [string, string, boolean][] = [
  ['ours', 'Authentication-Results: mail.example.test; spf=pass', false],
  ['ours, folded', 'Authentication-Results: mail.example.test;\r\n dkim=pass', false],
  ['ours with a version', 'Authentication-Results: mail.example.test 1; spf=pass', false],
  ['ours after a comment', 'Authentication-Results: (forged) mail.example.test; spf=pass', false],
  ['ours, upper case', 'AUTHENTICATION-RESULTS: MAIL.EXAMPLE.TEST; spf=pass', false],
  ['another server', 'Authentication-Results: mx.google.com; spf=pass', true],
  ['a longer name', 'Authentication-Results: mail.example.test.evil; spf=pass', true],
];

for (const [name, field, kept] of cases) {
  test(`stripForgedResults: ${name} is ${kept ? 'kept' : 'removed'}`, () => {
    const message = Buffer.from(`${field}\r\nSubject: x\r\n${body}`);
    const out = stripForgedResults(message, 'mail.example.test').toString();
    assert.equal(out.includes(field), kept);
    assert.ok(out.endsWith(`Subject: x\r\n${body}`), 'the rest is untouched');
  });
}
