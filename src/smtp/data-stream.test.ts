import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { fastDataStream } from './data-stream.ts';
import { chunked } from '../../test/helpers/chunks.ts';

/** DATA, the chunks, then what smtp-server's parser made of them: the data and the commands after it. */
async function run(chunks: Buffer[], fast: boolean) {
  const parser = new SMTPStream();
  if (fast) fastDataStream(parser);
  const commands: string[] = [];
  let data = '';
  let bytes = -1;
  parser.oncommand = (command, next) => {
    commands.push(command.toString('latin1'));
    if (command.toString() === 'DATA') {
      const stream = parser.startDataMode();
      stream.on('data', (c: Buffer) => (data += c.toString('latin1')));
      stream.on('end', () => {
        bytes = stream.byteLength;
        parser.continue();
      });
    }
    next?.();
  };
  for (const c of [Buffer.from('DATA\r\n'), ...chunks]) {
    await new Promise<void>((resolve) => parser.write(c, () => resolve()));
  }
  await new Promise<void>((resolve) => parser.end(() => resolve()));
  return { data, bytes, commands, ended: !parser._dataMode };
}

// pieces of a DATA phase, and the bytes that make it hard: dots at line starts, the terminator
const piece = fc.constantFrom(
  'a',
  'text ',
  '.',
  '..',
  '\r\n',
  '\r\n.',
  '.\r\n',
  '\r\n..\r\n',
  '\r\n.\r\n',
  '\r',
  '\n',
  '\n.',
  'QUIT\r\n',
);

test("the fast DATA parser gives smtp-server's data, byte counts and later commands", async () => {
  await fc.assert(
    fc.asyncProperty(chunked(piece), async (chunks) => {
      assert.deepEqual(await run(chunks, true), await run(chunks, false));
    }),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 2000) },
  );
});

test('stuffed dots are removed and the terminator ends the data, across chunks', async () => {
  const r = await run(
    [Buffer.from('..a\r\n..'), Buffer.from('b\r\n.'), Buffer.from('\r\nQUIT\r\n')],
    true,
  );
  assert.equal(r.data, '.a\r\n.b\r\n');
  assert.deepEqual(r.commands, ['DATA', 'QUIT']);
});
