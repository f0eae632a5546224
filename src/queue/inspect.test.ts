import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from './spool.ts';
import { messageAccount, searchMessages } from './inspect.ts';

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
