import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AliasFile } from './aliases.ts';

const D = 'example.com';
const parse = (text: string) => AliasFile.parse('aliases', D, text);

const lines: [string, { local: string; targets: string[] } | null][] = [
  ['sales: alice', { local: 'sales', targets: ['alice@example.com'] }],
  [
    'Sales: Alice@Gmail.COM, bob',
    { local: 'sales', targets: ['alice@gmail.com', 'bob@example.com'] },
  ],
  ['*: me@gmail.com', { local: '*', targets: ['me@gmail.com'] }],
  [
    '  info :  a@b.example ,, c@d.example  ',
    { local: 'info', targets: ['a@b.example', 'c@d.example'] },
  ],
  ['# comment', null],
  ['', null],
];
for (const [line, want] of lines) {
  test(`alias line ${JSON.stringify(line)}`, () => {
    assert.deepEqual(parse(line).aliases()[0] ?? null, want);
  });
}

const bad: [string, RegExp][] = [
  ['sales alice', /line 1: "sales alice" has no colon/],
  ['sales:', /has no target/],
  ['sales: | /bin/sh', /pipe target/],
  ['bad..x: a@b.example', /not a valid local part/],
  ['ok: nobody@', /line 1: the domain is empty/],
  ['sales: bob, Sales', /line 1: sales@example\.com points at itself/],
  ['*: *@gmail.com', /line 1: "\*@gmail\.com" is a wildcard; a target is one address/],
];
for (const [line, want] of bad) {
  test(`bad alias line ${JSON.stringify(line)} is refused`, () => {
    assert.throws(() => parse(line), want);
  });
}

test('edits keep comments and the order of lines', () => {
  const f = parse('# top\nsales: alice\n\n# fallback\n*: me@gmail.com\n');
  f.add(
    'sales',
    ['bob', 'alice@example.com'].map((t) => (t.includes('@') ? t : `${t}@${D}`)),
  );
  f.add('info', ['x@y.example']);
  assert.equal(f.remove('*'), true);
  assert.equal(f.remove('nothing'), false);
  assert.equal(
    f.toString(),
    '# top\nsales: alice@example.com, bob@example.com\n\n# fallback\ninfo: x@y.example\n',
  );
});

test('removing the last target removes the alias', () => {
  const f = parse('sales: a@b.example, c@d.example\n');
  assert.equal(f.remove('sales', ['a@b.example']), true);
  assert.equal(f.remove('sales', ['c@d.example']), true);
  assert.equal(f.toString(), '');
});
