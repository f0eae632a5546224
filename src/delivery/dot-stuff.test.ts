import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, type Transform } from 'node:stream';
import fc from 'fast-check';
// nodemailer's own DATA stream (not in its package exports): the reference
import DataStream from '../../node_modules/nodemailer/dist/esm/smtp-connection/data-stream.js';
import { fastDotStuffing } from './dot-stuff.ts';
import { chunked } from '../../test/helpers/chunks.ts';

async function run(chunks: Buffer[], fast: boolean) {
  const s = new DataStream() as unknown as Transform & {
    inByteCount: number;
    outByteCount: number;
  };
  if (fast) fastDotStuffing(s);
  const out: Buffer[] = [];
  Readable.from(chunks, { objectMode: false }).pipe(s);
  for await (const b of s) out.push(b as Buffer);
  return { data: Buffer.concat(out).toString('latin1'), in: s.inByteCount, out: s.outByteCount };
}

// lines of a message as the queue holds it, and the bytes that make a stream hard
const piece = fc.constantFrom(
  'a',
  'xy',
  '.',
  '..',
  '\r\n',
  '\r\n.',
  '.\r\n',
  '\r',
  '\n',
  '\n.',
  'é',
);
const crlfPiece = fc.constantFrom('a', 'text ', '.', '..', '\r\n', '\r\n.', '.\r\n', '\r\n..\r\n');

test("the fast DATA stream writes nodemailer's bytes and counts, CRLF-only or not", async () => {
  for (const pieces of [crlfPiece, piece]) {
    await fc.assert(
      fc.asyncProperty(chunked(pieces), async (chunks) => {
        assert.deepEqual(await run(chunks, true), await run(chunks, false));
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 2000) },
    );
  }
});

test('dots at line starts are doubled, across chunk boundaries too', async () => {
  const r = await run([Buffer.from('.a\r\n'), Buffer.from('.b\r\n.'), Buffer.from('.c\r\n')], true);
  assert.equal(r.data, '..a\r\n..b\r\n...c\r\n.\r\n');
});
