import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineLengths, longLine } from './lines.ts';

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

test('LineLengths agrees with longLine, whatever the chunks', () => {
  const texts = [
    `a: b\r\n\r\n${x(998)}\r\n`,
    `a: b\r\n\r\nok\r\n${x(999)}\r\n`,
    `a: b\r\n\r\n${x(999)}`,
    `Subject: ${x(991)}\r\n\r\nb\r\n`,
  ];
  for (const text of texts) {
    const data = Buffer.from(text);
    for (const size of [1, 2, 7, 500, 5000]) {
      const l = new LineLengths();
      for (let i = 0; i < data.length; i += size) l.feed(data.subarray(i, i + size));
      assert.deepEqual(
        l.result(),
        longLine(data),
        `${JSON.stringify(text.slice(0, 20))} in ${size}s`,
      );
    }
  }
});
