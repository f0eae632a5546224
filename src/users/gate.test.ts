import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HashBusy, HashGate } from './gate.ts';

test('at most `slots` run at once, `queue` wait, the rest are refused', async () => {
  const gate = new HashGate({ slots: 2, queue: 3 });
  let running = 0;
  let most = 0;
  const opens: (() => void)[] = [];
  const job = () =>
    gate.run(async () => {
      most = Math.max(most, ++running);
      await new Promise<void>((r) => opens.push(r));
      running--;
      return 'done';
    });
  const jobs = Array.from({ length: 7 }, () => job().catch((e: Error) => e));
  await new Promise((r) => setImmediate(r));
  for (let i = 0; i < 5; i++) {
    while (opens.length === 0) await new Promise((r) => setImmediate(r));
    opens.shift()?.();
  }
  const results = await Promise.all(jobs);
  assert.equal(most, 2);
  assert.equal(results.filter((r) => r === 'done').length, 5);
  assert.equal(results.filter((r) => r instanceof HashBusy).length, 2);
});

test('heavy hashes run one at a time, beside the others', async () => {
  const gate = new HashGate({ slots: 3, queue: 10 });
  let heavy = 0;
  let most = 0;
  let light = 0;
  const opens: (() => void)[] = [];
  const wait = () => new Promise<void>((r) => opens.push(r));
  const jobs = [
    ...Array.from({ length: 3 }, () =>
      gate.run(
        async () => {
          most = Math.max(most, ++heavy);
          await wait();
          heavy--;
        },
        { heavy: true },
      ),
    ),
    gate.run(async () => {
      light++;
      await wait();
    }),
  ];
  while (opens.length < 2) await new Promise((r) => setImmediate(r));
  assert.equal(light, 1, 'a light hash runs while a heavy one does');
  let done = false;
  const all = Promise.all(jobs).then(() => (done = true));
  while (!done) {
    opens.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
  await all;
  assert.equal(most, 1);
});
