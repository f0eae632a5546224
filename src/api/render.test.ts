import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkTemplate,
  compileTemplate,
  MAX_READS,
  readBudget,
  renderedMessage,
  templateData,
} from './render.ts';
import { ApiError } from './errors.ts';

// [what, template, data, expected subject, expected text, expected html]
const renders: [string, string, object, string, string, string][] = [
  ['a value', 'Hi {{name}}', { name: 'Ada' }, 'Hi Ada', 'Hi Ada', 'Hi Ada'],
  [
    'html escapes, text does not',
    '{{v}}',
    { v: '<b>&"' },
    '<b>&"',
    '<b>&"',
    '&lt;b&gt;&amp;&quot;',
  ],
  ['triple braces insert html as it is', '{{{v}}}', { v: '<b>' }, '<b>', '<b>', '<b>'],
  ['a missing value is empty', '[{{nope}}]', {}, '[]', '[]', '[]'],
  ['a nested value', '{{a.b}}', { a: { b: 1 } }, '1', '1', '1'],
  ['if and else', '{{#if x}}y{{else}}n{{/if}}', { x: false }, 'n', 'n', 'n'],
  ['each', '{{#each xs}}{{this}},{{/each}}', { xs: [1, 2] }, '1,2,', '1,2,', '1,2,'],
  ['inherited properties stay hidden', '{{name.constructor.name}}', { name: 'x' }, '', '', ''],
];

for (const [what, source, data, subject, text, html] of renders) {
  test(`render: ${what}`, () => {
    const r = compileTemplate({ subject: source, text: source, html: source }).render(
      data as Record<string, unknown>,
    );
    assert.deepEqual(r, { subject, text, html });
  });
}

test('render: a missing part stays missing', () => {
  assert.deepEqual(compileTemplate({ text: 'x' }).render({}), {
    subject: undefined,
    text: 'x',
    html: undefined,
  });
});

// [what, template part, source]
const invalid: [string, 'subject' | 'text' | 'html', string][] = [
  ['an unclosed block', 'text', '{{#if x}}'],
  ['a syntax error', 'html', '{{'],
  ['an unknown helper', 'subject', '{{shout name}}'],
  ['a control character', 'text', 'a\x01b'],
];
for (const [what, part, source] of invalid) {
  test(`checkTemplate refuses ${what}`, () => {
    assert.throws(
      () => checkTemplate({ [part]: source }),
      (e: unknown) => e instanceof ApiError && e.kind === 'bad-request' && e.detail === 'template',
    );
  });
}

test('checkTemplate takes tabs and line ends', () => {
  checkTemplate({ text: 'a\tb\r\nc\n' });
});

// [what, TemplateData, ok]
const data: [string, string | undefined, boolean][] = [
  ['absent is {}', undefined, true],
  ['an object', '{"a":1}', true],
  ['not JSON', '{', false],
  ['an array', '[1]', false],
  ['a string', '"x"', false],
  ['null', 'null', false],
];
for (const [what, json, ok] of data) {
  test(`templateData: ${what}`, () => {
    if (ok) assert.equal(typeof templateData(json, 'TemplateData'), 'object');
    else
      assert.throws(
        () => templateData(json, 'TemplateData'),
        (e: unknown) => e instanceof ApiError && e.detail === 'template-data',
      );
  });
}

test('renderedMessage: a line end in the data adds no header field', async () => {
  const mime = await renderedMessage(
    { subject: 'Hi {{name}}', text: 'x' },
    { name: 'Ada\r\nBcc: evil@example.org' },
  );
  assert.doesNotMatch(mime, /^Bcc:/im);
  assert.match(mime, /^Subject: Hi Ada/m);
});

test('render: each over an object gives its keys', () => {
  const r = compileTemplate({ text: '{{#each o}}{{@key}}={{this}};{{/each}}' }).render({
    o: { a: 1, b: 'x' },
  });
  assert.equal(r.text, 'a=1;b=x;');
});

// [what, template, data]: each would take minutes or gigabytes unbounded
const runaway: [string, string, object][] = [
  [
    'nested loops',
    '{{#each xs}}{{#each ../xs}}{{#each ../../xs}}.{{/each}}{{/each}}{{/each}}',
    { xs: Array.from({ length: 1000 }, (_, i) => i) },
  ],
  [
    'a partial that calls itself twice, down a deep object',
    '{{#*inline "p"}}{{#if n}}{{> p n}}{{> p n}}{{/if}}{{/inline}}{{> p this}}',
    JSON.parse('{"n":'.repeat(60) + '1' + '}'.repeat(60)) as object,
  ],
  ['a long string read many times', '{{s}}'.repeat(1000), { s: '<'.repeat(100_000) }],
];
for (const [what, source, data] of runaway) {
  test(`render: ${what} stops within the read budget`, () => {
    const start = Date.now();
    assert.throws(
      () => compileTemplate({ html: source }).render(data as Record<string, unknown>),
      (e: unknown) => e instanceof ApiError && e.kind === 'bad-request',
    );
    assert.ok(Date.now() - start < 5000, `${Date.now() - start} ms`);
  });
}

test('render: a part over MAX_RENDERED characters is refused before it is copied', () => {
  const big = 'x'.repeat(100_000);
  assert.throws(
    () =>
      compileTemplate({ text: `{{#each xs}}${big}{{/each}}` }).render({ xs: Array(200).fill(0) }),
    (e: unknown) => e instanceof ApiError && e.kind === 'rejected',
  );
});

test('checkTemplate refuses a template over 500 KB', () => {
  assert.throws(
    () => checkTemplate({ text: 'x'.repeat(300 * 1024), html: 'y'.repeat(300 * 1024) }),
    (e: unknown) => e instanceof ApiError && e.detail === 'template',
  );
});

test('render: the renderings of one bulk send share one read budget', () => {
  const t = compileTemplate({ text: '{{#each xs}}{{this}}{{/each}}' });
  // each element is read about twice (by each, and for the iteration)
  const xs = Array.from({ length: MAX_READS / 5 }, () => 1);
  t.render({ xs }); // alone, each rendering is within its own budget
  const shared = readBudget(1);
  t.render({ xs }, shared);
  t.render({ xs }, shared);
  assert.throws(
    () => t.render({ xs }, shared),
    (e: unknown) => e instanceof ApiError,
  );
});
