/**
 * posta.toml under arbitrary input: any text, and any TOML whose keys are
 * posta's own with values of any type, either loads or fails with a
 * PostaError whose every line is one sentence naming the file: never a
 * TypeError, a stack trace or "[object Object]".
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'smol-toml';
import { CONFIG_FILE, loadConfig } from '../../src/config/load.ts';
import { ConfigSchema } from '../../src/config/schema.ts';
import { PostaError } from '../../src/errors.ts';
import { budget } from './budget.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'posta-fuzz-config-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** The keys of a zod object, under any default()/optional() wrapping; [] for a leaf. */
function keysOf(schema: unknown): Record<string, unknown> {
  let s = schema as { shape?: Record<string, unknown>; _zod?: { def?: { innerType?: unknown } } };
  for (let i = 0; i < 5 && !s.shape && s._zod?.def?.innerType; i++) {
    s = s._zod.def.innerType;
  }
  return s.shape ?? {};
}

const SECTIONS = Object.entries(keysOf(ConfigSchema)).map(([key, schema]) => ({
  key,
  keys: Object.keys(keysOf(schema)),
}));

const scalar = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom('', 'mail.example.test', '127.0.0.1:25', '[::1]:587', 'example.test', '0'),
  fc.integer({ min: -1e6, max: 1e12 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.date({ noInvalidDate: true, min: new Date(0), max: new Date(4102444800000) }),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small' },
    scalar,
    fc.array(scalar, { maxLength: 3 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('v'), { maxKeys: 3 }),
  ),
})).v;

/** A posta.toml built from posta's own keys (mostly) with values of any type. */
const configArb = fc
  .tuple(
    fc.option(scalar, { nil: undefined }),
    fc.subarray(SECTIONS),
    fc.array(fc.tuple(fc.nat(), fc.nat(), value), { maxLength: 8 }),
    fc.option(fc.tuple(fc.string({ maxLength: 8 }), value), { nil: undefined }),
  )
  .map(([hostname, sections, values, stray]) => {
    const doc: Record<string, unknown> = { hostname: hostname ?? 'mail.example.test' };
    for (const [si, ki, v] of values) {
      const section = sections[si % Math.max(1, sections.length)];
      if (!section) continue;
      if (section.keys.length === 0) doc[section.key] = v;
      else {
        const table = (doc[section.key] ??= {}) as Record<string, unknown>;
        if (typeof table === 'object' && table !== null && !Array.isArray(table)) {
          table[section.keys[ki % section.keys.length] ?? 'x'] = v;
        }
      }
    }
    if (stray) doc[stray[0]] = stray[1];
    return stringify(doc);
  });

async function check(text: string): Promise<void> {
  await writeFile(join(dir, CONFIG_FILE), text);
  try {
    await loadConfig(dir);
  } catch (err) {
    assert.ok(err instanceof PostaError, `not a PostaError: ${(err as Error).stack}`);
    for (const line of err.message.split('\n')) {
      assert.ok(line.startsWith(join(dir, CONFIG_FILE)), `names the file: ${line}`);
      assert.match(line, /[.]$/, `a sentence: ${line}`);
      assert.doesNotMatch(line, /\[object |\bundefined\b|^\s+at /, line);
    }
  }
}

test('posta.toml with posta keys and values of any type: loads or one sentence per problem', async () => {
  await fc.assert(fc.asyncProperty(configArb, check), budget(300));
});

test('posta.toml of arbitrary text: loads or one sentence', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.string({ maxLength: 200 })),
      (text) => check(text),
    ),
    budget(300),
  );
});
