import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/db.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import { ApiError } from './errors.ts';
import { v1Error } from './ses-v1.ts';
import { v2Error } from './ses-v2.ts';
import {
  createTemplate,
  deleteTemplate,
  getTemplate,
  listTemplates,
  nameFromArn,
  updateTemplate,
} from './templates.ts';

const fresh = () => ({ db: openDb(':memory:', MIGRATIONS), owner: 'AKPSAAAAAAAAAAAAAAAA' });
const kind = (k: string, detail?: string) => (e: unknown) =>
  e instanceof ApiError && e.kind === k && (detail === undefined || e.detail === detail);

test('a template is stored, read, updated and deleted', async () => {
  const db = fresh();
  await createTemplate(db, 'a', { subject: 'S', text: 'T' }, 1000);
  assert.deepEqual(getTemplate(db, 'a'), {
    name: 'a',
    subject: 'S',
    text: 'T',
    html: undefined,
    createdAt: 1000,
    updatedAt: 1000,
  });
  await updateTemplate(db, 'a', { html: 'H' }, 2000);
  assert.deepEqual(getTemplate(db, 'a'), {
    name: 'a',
    subject: undefined,
    text: undefined,
    html: 'H',
    createdAt: 1000,
    updatedAt: 2000,
  });
  assert.equal(deleteTemplate(db, 'a'), true);
  assert.equal(deleteTemplate(db, 'a'), false);
  assert.throws(() => getTemplate(db, 'a'), kind('not-found', 'template'));
});

// [what, name, ok]
const names: [string, string, boolean][] = [
  ['letters, digits, _ and -', 'Ab_9-z', true],
  ['64 characters', 'x'.repeat(64), true],
  ['65 characters', 'x'.repeat(65), false],
  ['empty', '', false],
  ['a space', 'a b', false],
  ['a dot', 'a.b', false],
  ['a non-ASCII letter', 'é', false],
];
for (const [what, name, ok] of names) {
  test(`a template name of ${what} is ${ok ? 'taken' : 'refused'}`, async () => {
    const db = fresh();
    if (ok) await createTemplate(db, name, { text: 'x' });
    else await assert.rejects(createTemplate(db, name, { text: 'x' }), kind('bad-request'));
  });
}

test('a second template of one name exists; updating a missing one is not found', async () => {
  const db = fresh();
  await createTemplate(db, 'a', { text: 'x' });
  await assert.rejects(createTemplate(db, 'a', { text: 'y' }), kind('exists', 'template'));
  await assert.rejects(updateTemplate(db, 'b', { text: 'y' }), kind('not-found', 'template'));
  await assert.rejects(
    createTemplate(db, 'c', { text: '{{#if}}' }),
    kind('bad-request', 'template'),
  );
});

test('templates are listed by name, a page at a time', async () => {
  const db = fresh();
  for (const n of ['c', 'a', 'e', 'b', 'd']) await createTemplate(db, n, { text: n });
  const seen: string[][] = [];
  let token: string | undefined;
  do {
    const page = listTemplates(db, token, 2);
    seen.push(page.templates.map((t) => t.name));
    token = page.next;
  } while (token);
  assert.deepEqual(seen, [['a', 'b'], ['c', 'd'], ['e']]);
  assert.throws(() => listTemplates(db, '!!', 2), kind('bad-request', 'next-token'));
});

test('the name of a template ARN', () => {
  assert.equal(nameFromArn('arn:aws:ses:eu-west-1:123456789012:template/Welcome', 'A'), 'Welcome');
  assert.throws(
    () => nameFromArn('arn:aws:ses:eu-west-1:1:identity/a.b', 'A'),
    kind('bad-request'),
  );
});

// [ApiError, v2 status and code, v1 code]: the codes the SDKs pick exception classes by
const codes: [ApiError, number, string, string][] = [
  [new ApiError('not-found', 'x', 'template'), 404, 'NotFoundException', 'TemplateDoesNotExist'],
  [new ApiError('exists', 'x', 'template'), 400, 'AlreadyExistsException', 'AlreadyExists'],
  [new ApiError('bad-request', 'x', 'template'), 400, 'BadRequestException', 'InvalidTemplate'],
  [
    new ApiError('bad-request', 'x', 'template-data'),
    400,
    'BadRequestException',
    'InvalidRenderingParameter',
  ],
  [
    new ApiError('bad-request', 'x', 'next-token'),
    400,
    'InvalidNextTokenException',
    'InvalidParameterValue',
  ],
  [new ApiError('bad-request', 'x'), 400, 'BadRequestException', 'InvalidParameterValue'],
];
for (const [err, status, v2, v1] of codes) {
  test(`${err.kind}/${err.detail ?? '-'} is ${v2} in v2 and ${v1} in v1`, () => {
    const a = v2Error(err);
    assert.equal(a.status, status);
    assert.equal(a.headers['x-amzn-errortype'], v2);
    assert.match(v1Error(err, 'r').body, new RegExp(`<Code>${v1}</Code>`));
  });
}
