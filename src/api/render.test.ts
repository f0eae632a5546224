import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkTemplate,
  compileTemplate,
  MAX_READS,
  readBudget,
  renderedMessage,
  templateData,
  type TemplateContent,
  type TemplateData,
} from './render.ts';
import { ApiError } from './errors.ts';

const render = async (c: TemplateContent, data: object) =>
  (await compileTemplate(c)).render(data as TemplateData);
const apiError = (kind: string, detail?: string) => (e: unknown) =>
  e instanceof ApiError && e.kind === kind && (detail === undefined || e.detail === detail);

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
  [
    'each over an object',
    '{{#each o}}{{@key}}={{this}};{{/each}}',
    { o: { a: 1 } },
    'a=1;',
    'a=1;',
    'a=1;',
  ],
  ['inherited properties stay hidden', '{{name.constructor.name}}', { name: 'x' }, '', '', ''],
];
for (const [what, source, data, subject, text, html] of renders) {
  test(`render: ${what}`, async () => {
    const r = await render({ subject: source, text: source, html: source }, data);
    assert.deepEqual(r, { subject, text, html });
  });
}

test('render: a missing part stays missing', async () => {
  assert.deepEqual(await render({ text: 'x' }, {}), {
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
  ['a template over 500 KB', 'text', 'x'.repeat(501 * 1024)],
];
for (const [what, part, source] of invalid) {
  test(`checkTemplate refuses ${what}`, async () => {
    await assert.rejects(checkTemplate({ [part]: source }), apiError('bad-request', 'template'));
  });
}

test('checkTemplate takes tabs and line ends', async () => {
  await checkTemplate({ text: 'a\tb\r\nc\n' });
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
        apiError('bad-request', 'template-data'),
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
for (const [what, source, d] of runaway) {
  test(`render: ${what} stops within the read budget`, async () => {
    const template = await compileTemplate({ html: source });
    const start = Date.now();
    assert.throws(() => template.render(d as TemplateData), apiError('bad-request', 'template'));
    assert.ok(Date.now() - start < 2000, `${Date.now() - start} ms`);
  });
}

test('render: a part over MAX_RENDERED characters is refused before it is copied', async () => {
  const big = 'x'.repeat(100_000);
  await assert.rejects(
    render({ text: `{{#each xs}}${big}{{/each}}` }, { xs: Array(200).fill(0) }),
    apiError('rejected'),
  );
});

test('render: the renderings of one bulk send share one read budget', async () => {
  const t = await compileTemplate({ text: '{{#each xs}}{{this}}{{/each}}' });
  // each element is read about twice (by each, and for the iteration)
  const xs = Array.from({ length: MAX_READS / 5 }, () => 1);
  t.render({ xs }); // alone, each rendering is within its own budget
  const shared = readBudget(1);
  t.render({ xs }, shared);
  t.render({ xs }, shared);
  assert.throws(() => t.render({ xs }, shared), apiError('bad-request', 'template'));
});
