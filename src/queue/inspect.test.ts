import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from './spool.ts';
import { flushQueue, messageAccount, retryMessage, searchMessages } from './inspect.ts';

test("a search that accepts only some messages finds them past the newest others'", async () => {
  const spool = new Spool(await mkdtemp(join(tmpdir(), 'inspect-')));
  const send = (account: string, n: number) =>
    spool.enqueue(
      {
        sender: account,
        recipients: [`r${n}@dest.test`],
        source: 'submission',
        clientIp: '127.0.0.1',
        account,
      },
      Buffer.from(`From: ${account}\r\nSubject: s${n}\r\n\r\nx\r\n`),
    );
  const mine = await send('a@example.test', 0);
  for (let n = 1; n <= 30; n++) await send('b@example.test', n);
  const found = searchMessages(spool.db, 'to', 'dest.test', {
    limit: 1,
    accept: (id) => messageAccount(spool.db, id) === 'a@example.test',
  });
  assert.deepEqual(
    found.map((f) => f.id),
    [mine],
  );
  assert.equal(searchMessages(spool.db, 'to', 'dest.test', { limit: 5 }).length, 5);
  await spool.close();
});

test('a flush or a retry of a recipient warm-up held takes off the wait it did not spend', async () => {
  const spool = new Spool(await mkdtemp(join(tmpdir(), 'inspect-')));
  const id = await spool.enqueue(
    {
      sender: 'a@example.test',
      recipients: ['r@dest.test', 's@dest.test'],
      source: 'submission',
      clientIp: '127.0.0.1',
    },
    Buffer.from('From: a@example.test\r\n\r\nx\r\n'),
  );
  const hour = 3600_000;
  const held = () =>
    (
      spool.db
        .prepare('SELECT address, warmup_ms FROM recipients WHERE message = ? ORDER BY address')
        .all(id) as { address: string; warmup_ms: number }[]
    ).map((r) => [r.address, r.warmup_ms]);
  const now = Date.now();
  await spool.holdForWarmup(id, ['r@dest.test', 's@dest.test'], now + 10 * hour, 'warm-up: test');
  const waited = held()[0]?.[1] as number;
  assert.ok(waited > 10 * hour - 60_000 && waited <= 10 * hour, String(waited));
  // 4 hours later: 6 of the 10 hours were not spent
  assert.equal(flushQueue(spool.db, now + 4 * hour), 2);
  for (const [, ms] of held())
    assert.ok(Math.abs((ms as number) - (waited - 6 * hour)) < 5, String(ms));
  assert.equal(flushQueue(spool.db, now + 5 * hour), 0, 'nothing waits any more');
  // a retry of one message does the same, once
  await spool.holdForWarmup(id, ['r@dest.test'], now + 15 * hour, 'warm-up: test');
  assert.equal(retryMessage(spool.db, id, now + 7 * hour), 2);
  assert.equal(
    retryMessage(spool.db, id, now + 7 * hour),
    2,
    'a second retry takes nothing more off',
  );
  // r: 4 h left from before, 15 h more held, 8 h of it not spent; s: not held again
  const near = (ms: unknown, want: number) => Math.abs((ms as number) - want) < 60_000;
  const [r, s] = held();
  assert.ok(near(r?.[1], 11 * hour), `r: ${String(r?.[1])}`);
  assert.ok(near(s?.[1], 4 * hour), `s: ${String(s?.[1])}`);
  await spool.close();
});
