import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddress, parseDomain, parseLocalPart } from './address.ts';

const domains: [string, string | null][] = [
  ['example.com', 'example.com'],
  ['Example.COM', 'example.com'],
  ['example.com.', 'example.com'],
  ['mail.example.test', 'mail.example.test'],
  ['bücher.example', 'xn--bcher-kva.example'],
  ['xn--bcher-kva.example', 'xn--bcher-kva.example'],
  ['a-b.example', 'a-b.example'],
  ['localhost', null],
  ['', null],
  ['-bad.example', null],
  ['bad-.example', null],
  ['under_score.example', null],
  ['192.0.2.1', null],
  ['exa mple.com', null],
  [`${'a'.repeat(64)}.example`, null],
  ['a..example', null],
];
for (const [input, want] of domains) {
  test(`parseDomain(${JSON.stringify(input)}) -> ${want}`, () => {
    const got = parseDomain(input);
    assert.equal(got.ok ? got.value : null, want);
  });
}

const locals: [string, string | null][] = [
  ['i', 'i'],
  ['First.Last', 'first.last'],
  ['a+tag', 'a+tag'],
  ['josé', 'josé'],
  ['.dot', null],
  ['dot.', null],
  ['two..dots', null],
  ['sp ace', null],
  ['quote"d', null],
  ['a@b', null],
  ['', null],
  ['x'.repeat(65), null],
];
for (const [input, want] of locals) {
  test(`parseLocalPart(${JSON.stringify(input)}) -> ${want}`, () => {
    const got = parseLocalPart(input);
    assert.equal(got.ok ? got.value : null, want);
  });
}

test('parseAddress normalises both halves and explains a missing @', () => {
  assert.deepEqual(parseAddress('I@Bücher.Example'), {
    ok: true,
    value: { local: 'i', domain: 'xn--bcher-kva.example' },
  });
  const bad = parseAddress('nobody.example.com');
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.error, /no @/);
});
