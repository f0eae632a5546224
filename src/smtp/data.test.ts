import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryBudget, readData, SPOOL_THRESHOLD } from './data.ts';

test('a client gone mid-DATA leaves no temporary file, however far its writes got, and the caller hears why', async () => {
  const incoming = await mkdtemp(join(tmpdir(), 'posta-incoming-'));
  try {
    const line = Buffer.from(`${'x'.repeat(74)}\r\n`);
    const chunk = Buffer.concat(Array<Buffer>(100).fill(line)); // 7.6 KB of lines: a write in flight
    for (let round = 0; round < 200; round++) {
      const stream = new PassThrough();
      const read = readData(stream, {
        messageSize: 50 * 1024 * 1024,
        headerSize: 64 * 1024,
        budget: new MemoryBudget(8 * 1024 * 1024),
        incoming,
      });
      stream.write('From: a@example.test\r\n\r\n');
      // past the threshold, so the body goes to a file; then more as a socket
      // brings it, and gone at a different point of the file's writes each round
      for (let i = 0; i * chunk.length <= SPOOL_THRESHOLD; i++) stream.write(chunk);
      const feeding = setInterval(() => stream.write(chunk), 0);
      await sleep(round % 5);
      clearInterval(feeding);
      const gone = Object.assign(new Error('Connection closed'), { code: 'ECONNECTION' });
      stream.destroy(gone);
      await assert.rejects(read, (err: Error & { code?: string }) => err.code === 'ECONNECTION');
      assert.deepEqual(await readdir(incoming), [], `round ${round}`);
    }
  } finally {
    await rm(incoming, { recursive: true, force: true });
  }
});
