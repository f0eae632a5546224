import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DUE_OF_MESSAGE, MIGRATIONS, PART_SIZE, Spool, newQueueId } from './spool.ts';
import { deleteMessage } from './inspect.ts';
import { openDb } from '../db/db.ts';
import { WorkerPool } from '../workers/pool.ts';
import type { CheckpointResult } from './checkpoint.ts';

/** The whole stored message, read back as delivery reads it. */
async function text(spool: Spool, id: string): Promise<Buffer | null> {
  const m = spool.message(id);
  if (!m) return null;
  const chunks: Buffer[] = [];
  for await (const c of m.open()) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

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
  await spool.close();
  const again = new Spool(dir);
  const list = again.list();
  assert.equal(list.length, 50);
  const first = list.find((m) => m.id === ids[7]);
  assert.equal(first?.sender, 's7@example.test');
  assert.deepEqual(first?.recipients.sort(), ['r7@example.org', 'x7@example.net']);
  assert.equal((await text(again, ids[7] ?? ''))?.toString(), 'message 7\r\n');
  await again.close();
});

test('queue ids sort by time and are unique', () => {
  const a = newQueueId(1000);
  const b = newQueueId(2000);
  assert.ok(a < b);
  assert.match(a, /^[0-9a-z]{18}$/);
  assert.notEqual(newQueueId(5), newQueueId(5));
});

test('due work of one domain or message is found however large the backlog of another', async () => {
  const spool = new Spool(await mkdtemp(join(tmpdir(), 'spool-')));
  const one = (to: string) =>
    spool.enqueue(
      { sender: 'a@example.test', recipients: [to], source: 'submission', clientIp: '127.0.0.1' },
      Buffer.from('x\r\n'),
    );
  const backlog = await Promise.all(Array.from({ length: 300 }, (_, n) => one(`u${n}@big.test`)));
  const small = await one('someone@small.test');
  const now = Date.now() + 1000;
  const none = new Set<string>();
  // big.test at its limit: the full query skips its backlog
  const all = spool.due(now, 10, none, new Set(['big.test']));
  assert.deepEqual(
    all.map((m) => m.id),
    [small],
  );
  const big = spool.due(now, 10, none, none, { domains: ['big.test'] });
  assert.equal(big.length, 10);
  assert.deepEqual(
    big.map((m) => m.id),
    spool.due(now, 10, none, none).map((m) => m.id),
    'the oldest of the domain, in the order of the full query',
  );
  const inFlight = new Set(big.slice(0, 5).map((m) => m.id));
  const skipped = spool.due(now, 10, inFlight, none, { domains: ['big.test'] });
  assert.equal(skipped[0]?.id, big[5]?.id, 'messages in flight are left out');
  const byMessage = spool.due(now, 10, none, none, { messages: [small, backlog[299] ?? ''] });
  assert.deepEqual(byMessage.map((m) => m.id).sort(), [small, backlog[299]].sort());
  assert.deepEqual(spool.due(now, 10, none, new Set(['small.test']), { messages: [small] }), []);
  await spool.close();
});

test('a queue written before the domain index keeps its mail when opened', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'spool-'));
  const old = openDb(join(dir, 'queue.db'), MIGRATIONS.slice(0, 2));
  old
    .prepare(
      `INSERT INTO messages (id, created_at, sender, source, client_ip, size, data)
       VALUES ('m1', 1, 'a@example.test', 'submission', '127.0.0.1', 3, X'780d0a')`,
    )
    .run();
  old
    .prepare(
      "INSERT INTO recipients (message, address, next_attempt) VALUES ('m1', 'b@dest.test', 1)",
    )
    .run();
  old.close();
  const spool = new Spool(dir);
  const due = spool.due(Date.now(), 10, new Set(), new Set(), { domains: ['dest.test'] });
  assert.deepEqual(due[0]?.recipients, [{ address: 'b@dest.test', attempts: 0, warmupMs: 0 }]);
  assert.equal((await text(spool, 'm1'))?.toString(), 'x\r\n');
  await spool.close();
});

test('a body in a file is stored in parts, read back whole, and its parts go with the message', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'spool-'));
  const spool = new Spool(dir);
  const head = Buffer.from('Received: x\r\nSubject: big\r\n\r\n');
  const body = Buffer.alloc(Math.round(2.5 * PART_SIZE), 'abcdefgh\r\n');
  const path = join(dir, 'body.tmp');
  await writeFile(path, Buffer.concat([Buffer.from('ignored header\r\n\r\n'), body]));
  const held = { head, body: { path, start: 18, size: body.length } };
  const id = await spool.enqueue(env(1), held);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const back = await text(spool, id);
  assert.equal(sha(back ?? Buffer.alloc(0)), sha(Buffer.concat([head, body])));
  assert.equal(spool.message(id)?.head.toString(), head.toString());
  assert.equal(spool.message(id)?.size, head.length + body.length);
  assert.equal(spool.list()[0]?.size, head.length + body.length);
  const parts = () =>
    (spool.db.prepare('SELECT count(*) AS n FROM message_parts').get() as { n: number }).n;
  assert.equal(parts(), 3);
  // parts of a message whose row never committed are swept at start
  spool.db
    .prepare("INSERT INTO message_parts (message, seq, data) VALUES ('gone', 0, x'00')")
    .run();
  spool.sweep();
  assert.equal(parts(), 3);
  assert.ok(deleteMessage(spool.db, id));
  assert.equal(parts(), 0);
  await spool.close();
});

test("a new message's due recipients are read through the primary key, not the due index", async () => {
  const spool = new Spool(await mkdtemp(join(tmpdir(), 'spool-')));
  const plan = spool.db.prepare(`EXPLAIN QUERY PLAN ${DUE_OF_MESSAGE}`).all('m', 0) as {
    detail: string;
  }[];
  // with the due index, each new message would walk the whole due backlog
  assert.match(plan.map((p) => p.detail).join('\n'), /sqlite_autoindex_recipients_1 \(message=\?/);
  await spool.close();
});

test("the server's spool checkpoints on a worker thread and its WAL stays bounded under sustained writes", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'spool-'));
  const pool = new WorkerPool({ servers: null });
  const errors: string[] = [];
  const spool = new Spool(dir, {
    run: (path) => pool.run({ kind: 'checkpoint', input: { path } }) as Promise<CheckpointResult>,
    onError: (m) => errors.push(m),
  });
  const wal = join(dir, 'queue.db-wal');
  let largest = 0;
  const body = (n: number) => Buffer.alloc(200 * 1024, `message ${n}\r\n`);
  // 20 writers as 20 sessions, each message delivered (removed) after it is
  // stored, as on a relay: 120 MB through the WAL, the last 20 kept
  const kept: string[] = [];
  await Promise.all(
    Array.from({ length: 20 }, async (_, w) => {
      for (let i = 0; i < 30; i++) {
        const n = w * 100 + i;
        const id = await spool.enqueue({ ...env(n), recipients: [`r${n}@example.org`] }, body(n));
        largest = Math.max(largest, statSync(wal).size);
        if (i === 29) {
          kept.push(id);
          continue;
        }
        const at = Date.now();
        await spool.record(id, {
          attempts: [
            {
              message: id,
              recipient: `r${n}@example.org`,
              at,
              durationMs: 1,
              outcome: 'delivered',
              reply: '250 ok',
            },
          ],
          retry: new Map(),
          notices: [],
        });
      }
    }),
  );
  await spool.close();
  await pool.close();
  assert.deepEqual(errors, []);
  // without the held checkpoint it reaches the whole 120 MB
  assert.ok(largest < 64 * 1024 * 1024, `the WAL grew to ${largest} bytes`);
  const again = new Spool(dir);
  assert.deepEqual(
    again
      .list()
      .map((m) => m.id)
      .sort(),
    kept.sort(),
  );
  const first = again.list().find((m) => m.id === kept[0]);
  const n = Number(/^s(\d+)@/.exec(first?.sender ?? '')?.[1]);
  assert.ok((await text(again, kept[0] ?? ''))?.equals(body(n)));
  await again.close();
});

test('a recipient held for warm-up waits untried, its wait counted; a start makes it due again, the unspent wait taken off', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'spool-'));
  const spool = new Spool(dir);
  const id = await spool.enqueue(env(2), Buffer.from('Subject: x\r\n\r\nx\r\n'));
  const [first, second] = env(2).recipients;
  const now = Date.now();
  await spool.holdForWarmup(id, [second ?? ''], now + 3_600_000, 'warm-up of x: all taken');
  const due = spool.due(now, 10, new Set());
  assert.deepEqual(
    due[0]?.recipients.map((r) => r.address),
    [first],
    'the held one is not due',
  );
  const row = () =>
    spool.db
      .prepare('SELECT attempts, last_reply, warmup_ms FROM recipients WHERE address = ?')
      .get(second ?? '') as { attempts: number; last_reply: string; warmup_ms: number };
  assert.equal(row().attempts, 0, 'no attempt');
  assert.equal(row().last_reply, 'warm-up of x: all taken');
  assert.ok(Math.abs(row().warmup_ms - 3_600_000) < 5000, String(row().warmup_ms));
  // released 20 minutes on: 40 minutes of the wait were never spent
  assert.equal(await spool.releaseWarmupHolds(now + 1_200_000), 1);
  assert.ok(Math.abs(row().warmup_ms - 1_200_000) < 5000, String(row().warmup_ms));
  const again = spool.due(now + 1_200_000, 10, new Set());
  assert.deepEqual(again[0]?.recipients.map((r) => r.address).sort(), [first, second].sort());
  assert.equal(await spool.releaseWarmupHolds(now + 1_200_000), 0, 'nothing held any more');
  await spool.close();
});
