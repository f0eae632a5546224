import { test } from 'node:test';
import assert from 'node:assert/strict';
import { longLine } from './lines.ts';

const x = (n: number) => 'x'.repeat(n);

for (const [name, text, want] of [
  ['998 octets and CRLF', `a: b\r\n\r\n${x(998)}\r\n`, null],
  ['999 octets in the body', `a: b\r\n\r\nok\r\n${x(999)}\r\n`, { line: 4, length: 999 }],
  ['999 octets without a final CRLF', `a: b\r\n\r\n${x(999)}`, { line: 3, length: 999 }],
  ['a folded header of 2000 octets', `Subject: ${x(900)}\r\n ${x(900)}\r\n\r\nb\r\n`, null],
  ['one header line of 1000 octets', `Subject: ${x(991)}\r\n\r\nb\r\n`, { line: 1, length: 1000 }],
] as const) {
  test(`longLine: ${name}`, () => assert.deepEqual(longLine(Buffer.from(text)), want));
}
