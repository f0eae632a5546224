import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeWords } from './resend-email.ts';

for (const [name, value, want] of [
  ['plain text', 'Hello there', 'Hello there'],
  ['Q, UTF-8', '=?UTF-8?Q?Gr=C3=BC=C3=9Fe_from_here?=', 'Grüße from here'],
  ['B, UTF-8', '=?utf-8?B?R3LDvMOfZQ==?=', 'Grüße'],
  ['two adjacent words: the space between goes', '=?UTF-8?Q?a?= =?UTF-8?Q?b?=', 'ab'],
  ['a word then text: the space stays', '=?UTF-8?Q?Gr=C3=BC?= you', 'Grü you'],
  ['ISO-8859-1', '=?ISO-8859-1?Q?caf=E9?=', 'café'],
  ['a language after the charset (RFC 2231)', '=?UTF-8*en?Q?hi?=', 'hi'],
  ['an unknown charset: Latin-1', '=?x-nothing?Q?caf=E9?=', 'café'],
  ['a name in a mailbox', '=?UTF-8?Q?J=C3=B6rg?= <j@example.test>', 'Jörg <j@example.test>'],
] as const) {
  test(`decodeWords: ${name}`, () => assert.equal(decodeWords(value), want));
}
