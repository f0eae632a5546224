import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, newQueueId } from './spool.ts';

const env = (n: number) => ({
  sender: `s${n}@example.test`,
  recipients: [`r${n}@example.org`, `x${n}@example.net`],
  source: 'submission' as const,
  clientIp: '127.0.0.1',
});

test('messages enqueued together are committed together and read back whole', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'spool-'));
  const spool = new Spool(dir);
  const ids = await Promise.all(
    Array.from({ length: 50 }, (_, n) => spool.enqueue(env(n), Buffer.from(`message ${n}\r\n`))),
  );
  assert.equal(new Set(ids).size, 50);
  spool.close();
  const again = new Spool(dir);
  const list = again.list();
  assert.equal(list.length, 50);
  const first = list.find((m) => m.id === ids[7]);
  assert.equal(first?.sender, 's7@example.test');
  assert.deepEqual(first?.recipients.sort(), ['r7@example.org', 'x7@example.net']);
  assert.equal(again.data(ids[7] ?? '')?.toString(), 'message 7\r\n');
  again.close();
});

test('queue ids sort by time and are unique', () => {
  const a = newQueueId(1000);
  const b = newQueueId(2000);
  assert.ok(a < b);
  assert.match(a, /^[0-9a-z]{18}$/);
  assert.notEqual(newQueueId(5), newQueueId(5));
});
