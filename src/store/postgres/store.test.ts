/**
 * What only the PostgreSQL queue does: several nodes on one database, a node
 * that stops, and the database itself crashing or going away. On a real
 * server (test/helpers/postgres.ts), fsync and synchronous_commit on.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { PgQueueStore } from './store.ts';
import { PgLimits } from './limits.ts';
import { GroupCommit } from './commit.ts';
import { counterStatement, pgText } from '../statement.ts';
import type { Envelope } from '../../queue/spool.ts';
import type { Claim } from '../queue-store.ts';
import { postgresMissing, startPostgres, type Postgres } from '../../../test/helpers/postgres.ts';

const env = (n: number, recipients: string[]): Envelope => ({
  sender: `s${n}@example.test`,
  recipients,
  source: 'inbound',
  clientIp: '127.0.0.1',
});

const delivered = (c: Claim) => ({
  attempts: c.recipients.map((r) => ({
    message: c.id,
    recipient: r.address,
    at: Date.now(),
    durationMs: 1,
    outcome: 'delivered' as const,
    reply: '250 ok',
  })),
  retry: new Map<string, number>(),
  notices: [],
});

/** What a kill -9 of a node does to its sessions on the database: they end. */
async function endSessions(url: string, application: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1',
      [application],
    );
  } finally {
    await c.end();
  }
}

describe('PgQueueStore', { skip: postgresMissing() ?? false }, () => {
  let server: Postgres;
  before(async () => {
    server = await startPostgres();
  });
  after(() => server.stop());

  test('two nodes open an empty database at once: one migrates, both work', async () => {
    const url = await server.database();
    const [a, b] = await Promise.all([
      PgQueueStore.open({ url, node: 'a' }),
      PgQueueStore.open({ url, node: 'b' }),
    ]);
    const id = await a.enqueue(env(1, ['x@example.org']), Buffer.from('x\r\n\r\n'));
    assert.deepEqual(
      (await b.list()).map((m) => m.id),
      [id],
    );
    await a.close();
    await b.close();
  });

  test('messages enqueued in one turn share one transaction', async () => {
    const url = await server.database();
    const s = await PgQueueStore.open({ url, node: 'a' });
    const before = s.commits;
    await Promise.all(
      Array.from({ length: 50 }, (_, n) =>
        s.enqueue(env(n, [`r${n}@example.org`]), Buffer.from(`m${n}\r\n\r\n`)),
      ),
    );
    assert.equal(s.commits - before, 1);
    await s.close();
  });

  test('what goes beside a message and its attempts commits with them (queue-writes.ts)', async () => {
    const url = await server.database();
    const s = await PgQueueStore.open({ url, node: 'a' });
    const id = await s.enqueue(
      {
        sender: 'news@example.test',
        recipients: ['gone@example.org'],
        source: 'submission',
        clientIp: '127.0.0.1',
        apiKey: 'AKIDTEST',
        unsubscribe: { token: 'TOKEN1', domain: 'example.test', address: 'gone@example.org' },
      },
      Buffer.from('From: news@example.test\r\nSubject: hi\r\n\r\nbody\r\n'),
    );
    const [c] = await s.claim({ now: Date.now(), limit: 10 });
    assert.equal(c?.id, id);
    const ok = await s.record(c, {
      attempts: [
        {
          message: id,
          recipient: 'gone@example.org',
          at: Date.now(),
          durationMs: 3,
          outcome: 'permanent',
          reply: '550 5.1.1 no such user',
        },
      ],
      retry: new Map(),
      notices: [],
      events: [
        {
          message: id,
          type: 'Bounce',
          at: Date.now(),
          recipients: ['gone@example.org'],
          detail: {},
        },
      ],
      suppress: [
        { domain: 'example.test', address: 'Gone@example.org', reason: 'BOUNCE', message: id },
      ],
      warmup: [{ sender: 'example.test', destination: 'other', day: 20000, n: 1 }],
    });
    assert.equal(ok, true);
    await s.close();
    const db = new pg.Client(url);
    await db.connect();
    const one = async (sql: string) =>
      (await db.query<Record<string, string | number | null>>(sql)).rows;
    assert.deepEqual(
      (await one('SELECT type FROM events ORDER BY id')).map((r) => r.type),
      ['Send', 'Bounce'],
    );
    assert.equal((await one('SELECT sender FROM mail_log'))[0]?.sender, 'news@example.test');
    assert.equal((await one('SELECT address FROM suppressed'))[0]?.address, 'gone@example.org');
    assert.equal(Number((await one('SELECT count FROM key_sends'))[0]?.count), 1);
    assert.equal((await one('SELECT token FROM unsubscribe_links'))[0]?.token, 'token1');
    assert.equal(Number((await one('SELECT n FROM warmup_counts'))[0]?.n), 1);
    assert.deepEqual(
      (await one('SELECT outcome, n FROM stats ORDER BY outcome')).map((r) => [
        r.outcome,
        Number(r.n),
      ]),
      [
        ['accepted', 1],
        ['bounced', 1],
      ],
    );
    await db.end();
  });

  test('retention: one node does it for all, and what is older than the cut goes', async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a' });
    const b = await PgQueueStore.open({ url, node: 'b' });
    const db = new pg.Client(url);
    await db.connect();
    const now = Date.now();
    const day = 86400_000;
    const old = now - 40 * day;
    const rows = async () =>
      (
        await db.query<{ n: string }>(
          `SELECT (SELECT count(*) FROM attempts) + (SELECT count(*) FROM stats)
                + (SELECT count(*) FROM warmup_counts) AS n`,
        )
      ).rows[0]?.n;
    const fill = async () => {
      for (const at of [old, now]) {
        await db.query(
          `INSERT INTO attempts (message, recipient, at, duration_ms, outcome, reply)
           VALUES ($1, 'r@example.org', $2, 1, 'delivered', '250 ok')`,
          [`m${at}${Math.random()}`, at],
        );
        await db.query(
          `INSERT INTO stats (minute, outcome, class, n) VALUES ($1, 'delivered', 'other', 1)
           ON CONFLICT DO NOTHING`,
          [Math.floor(at / 60_000)],
        );
        await db.query(
          `INSERT INTO warmup_counts (sender, destination, day, n) VALUES ('s', 'd', $1, 1)
           ON CONFLICT DO NOTHING`,
          [Math.floor(at / day)],
        );
      }
    };
    await fill();
    assert.equal(await rows(), '6');
    await a.prune(now - 30 * day, now);
    assert.equal(await rows(), '3', 'the old rows went, the new stayed');
    await fill();
    await b.prune(now - 30 * day, now);
    assert.equal(await rows(), '7', 'another node does not while the first holds the duty');
    await a.prune(now - 30 * day, now);
    assert.equal(await rows(), '4');
    await db.end();
    await a.close();
    await b.close();
  });

  test('shared limits: racing nodes never hold more than the slots of a destination, and its rate holds', async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a' });
    const b = await PgQueueStore.open({ url, node: 'b' });
    const limits = [a.limits(), b.limits()];
    let held = 0;
    let most = 0;
    let got = 0;
    await Promise.all(
      Array.from({ length: 120 }, async (_, i) => {
        const slot = await limits[i % 2]!.slot('two.test', 2);
        if (!slot) return;
        got++;
        most = Math.max(most, ++held);
        await new Promise((r) => setTimeout(r, Math.random() * 4));
        held--;
        await slot.release();
      }),
    );
    assert.ok(got >= 2, `some slots were had (${got})`);
    assert.ok(most <= 2, `at most 2 at once, saw ${most}`);
    // a rate of 30 a minute: 30 of 100 asked at once by both nodes
    const taken = await Promise.all(
      Array.from({ length: 100 }, (_, i) => limits[i % 2]!.take('rate.test', 30)),
    );
    assert.equal(taken.filter(Boolean).length, 30);
    // a node that stops holds its slots until it is reaped
    const s1 = await limits[1]!.slot('one.test', 1);
    assert.ok(s1);
    assert.equal(await limits[0]!.slot('one.test', 1), null);
    await a.heartbeat(Date.now() + 120_000);
    await a.reap(60_000, Date.now() + 120_000);
    const s0 = await limits[0]!.slot('one.test', 1);
    assert.ok(s0, "the silent node's slot was given back");
    await s0.release();
    await a.close();
    await b.close();
  });

  test('the rate is a sliding minute across the nodes: never more than perMinute in any 60 s', async () => {
    const url = await server.database();
    await (await PgQueueStore.open({ url, node: 'a' })).close(); // the schema
    const pools = [new pg.Pool({ connectionString: url }), new pg.Pool({ connectionString: url })];
    let t = 1_000_000;
    const nodes = pools.map((p, i) => new PgLimits(p, `n${i}`, () => t));
    const burst = async (n: number) =>
      (
        await Promise.all(Array.from({ length: n }, (_, i) => nodes[i % 2]!.take('r.test', 10)))
      ).filter(Boolean).length;
    assert.equal(await burst(15), 10);
    t += 59_999;
    assert.equal(await burst(5), 0, 'the first ten are still within the minute');
    t += 2;
    assert.equal(await burst(15), 10, 'a minute on, ten more');
    await Promise.all(pools.map((p) => p.end()));
  });

  test("nodes' batches bumping the same counter rows in opposite orders all commit: counters go last and sorted, a deadlock's loser is tried again", async () => {
    const url = await server.database();
    const pools = [0, 1, 2].map(() => new pg.Pool({ connectionString: url, max: 2 }));
    for (const p of pools) p.on('error', () => {}); // idle connections ended with the server
    await pools[0]!.query('CREATE TABLE hot (k integer PRIMARY KEY, n integer NOT NULL)');
    const bump = (k: number) =>
      counterStatement(
        'INSERT INTO hot (k, n) VALUES (?, 1) ON CONFLICT (k) DO UPDATE SET n = hot.n + 1',
        k,
      );
    const groups = pools.map((p) => new GroupCommit(p));
    const keys = [1, 2, 3, 4, 5];
    // each write bumps every row, in an order of its own; half hand them to
    // the batch (deferred), half run them inline, which can deadlock
    const writes = groups.flatMap((g, gi) =>
      Array.from({ length: 40 }, (_, i) =>
        g.write(async (c, defer) => {
          const order = (gi + i) % 2 ? keys : [...keys].reverse();
          for (const k of order) {
            const st = bump(k);
            if (i % 2) defer(st);
            else await c.query(pgText(st.sql), st.args as unknown[]);
          }
        }, true),
      ),
    );
    const results = await Promise.allSettled(writes);
    assert.deepEqual(
      results.filter((r) => r.status === 'rejected').map((r) => String(r.reason)),
      [],
    );
    const { rows } = await pools[0]!.query<{ k: number; n: number }>(
      'SELECT k, n FROM hot ORDER BY k',
    );
    assert.deepEqual(
      rows.map((r) => [r.k, r.n]),
      keys.map((k) => [k, 120]),
    );
    await Promise.all(pools.map((p) => p.end()));
  });

  test('a claim whose claimed recipients were all recorded is freed by the reap of its silent node', async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a' });
    const b = await PgQueueStore.open({ url, node: 'b' });
    const id = await a.enqueue(env(1, ['x@one.test', 'y@two.test']), Buffer.from('m\r\n\r\n'));
    // one recipient of two in the claim; it is delivered, and node a dies before its release
    const [c] = await a.claim({ now: Date.now(), limit: 1 });
    assert.equal(c?.recipients.length, 1);
    assert.equal(await a.record(c, delivered(c)), true);
    assert.deepEqual(
      await b.claim({ now: Date.now(), limit: 10 }),
      [],
      'the message is in a claim',
    );
    const later = Date.now() + 120_000;
    await b.heartbeat(later);
    await b.reap(60_000, later);
    const [after] = await b.claim({ now: later, limit: 10 });
    assert.equal(after?.id, id);
    assert.equal(after?.recipients.length, 1);
    await b.release(after);
    await a.close();
    await b.close();
  });

  test('a node that starts again under its name gets back what it held: claims and slots', async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a' });
    const id = await a.enqueue(env(1, ['x@one.test']), Buffer.from('m\r\n\r\n'));
    const [c] = await a.claim({ now: Date.now(), limit: 10 });
    assert.equal(c?.id, id);
    assert.ok(await a.limits().slot('one.test', 1));
    // killed: nothing released, and its sessions end; the same node starts again
    await endSessions(url, 'posta a');
    const again = await PgQueueStore.open({ url, node: 'a' });
    const [claim] = await again.claim({ now: Date.now(), limit: 10 });
    assert.equal(claim?.id, id, 'the message is free again');
    const slot = await again.limits().slot('one.test', 1);
    assert.ok(slot, 'and the slot');
    await slot.release();
    await again.close();
    await a.close().catch(() => {}); // its pool's connections were ended under it
  });

  test("a second posta under a running node's name does not start, and says why", async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a' });
    await assert.rejects(PgQueueStore.open({ url, node: 'a', lockWaitMs: 1500 }), {
      message:
        'another posta is running as node "a" on this database; give each one its own [storage] node',
    });
    const b = await PgQueueStore.open({ url, node: 'b', lockWaitMs: 1500 });
    await b.close();
    await a.close();
  });

  test('two nodes claiming at once never get the same recipient', async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a', max: 4 });
    const b = await PgQueueStore.open({ url, node: 'b', max: 4 });
    const all = new Set<string>();
    await Promise.all(
      Array.from({ length: 300 }, (_, n) => {
        const rcpts = [`r${n}@d${n % 7}.test`, `q${n}@d${n % 5}.test`, `z${n}@d${n % 3}.test`];
        return a.enqueue(env(n, rcpts), Buffer.from(`m${n}\r\n\r\n`)).then((id) => {
          for (const r of rcpts) all.add(`${id} ${r}`);
        });
      }),
    );
    const seen = new Map<string, string>();
    let rounds = 0;
    for (; seen.size < all.size; rounds++) {
      assert.ok(rounds < 1000, 'the queue drains');
      // each node claims twice at once, against the other's claims
      const batches = await Promise.all(
        [a, b, a, b].map((s) => s.claim({ now: Date.now(), limit: 17 }).then((cs) => ({ s, cs }))),
      );
      const holder = new Map<string, string>();
      for (const { s, cs } of batches) {
        for (const c of cs) {
          // a message is in one claim at a time
          assert.equal(holder.get(c.id), undefined, `${c.id} in two claims`);
          holder.set(c.id, c.lease);
          for (const r of c.recipients) {
            const key = `${c.id} ${r.address}`;
            assert.equal(
              seen.get(key),
              undefined,
              `${key} claimed by ${seen.get(key)} and ${s.node}`,
            );
            seen.set(key, s.node);
          }
        }
      }
      await Promise.all(
        batches.flatMap(({ s, cs }) =>
          cs.map(async (c) => {
            assert.equal(await s.record(c, delivered(c)), true);
            // the scheduler ends each claim so; the message's other recipients are free again
            await s.release(c);
          }),
        ),
      );
    }
    assert.deepEqual([...seen.keys()].sort(), [...all].sort());
    assert.ok(new Set(seen.values()).size === 2, 'both nodes got work');
    assert.deepEqual(await a.list(), []);
    await a.close();
    await b.close();
  });

  test('a node that stops heartbeating is reaped: the other takes its work, and its late record is refused', async () => {
    const url = await server.database();
    const a = await PgQueueStore.open({ url, node: 'a' });
    const b = await PgQueueStore.open({ url, node: 'b' });
    const id = await a.enqueue(
      env(1, ['p@example.org', 'q@example.net']),
      Buffer.from('x\r\n\r\n'),
    );
    const t0 = Date.now();
    await a.heartbeat(t0);
    const [claimed] = await a.claim({ now: t0, limit: 10 });
    assert.equal(claimed?.id, id);
    // a is still alive: nothing is reaped
    await b.heartbeat(t0 + 1_000);
    assert.deepEqual(await b.reap(30_000, t0 + 1_000), { recipients: 0, nodes: [] });
    assert.deepEqual(await b.claim({ now: t0 + 1_000, limit: 10 }), []);
    // a falls silent for longer than the lease
    const t1 = t0 + 60_000;
    await b.heartbeat(t1);
    assert.deepEqual(await b.reap(30_000, t1), { recipients: 2, nodes: ['a'] });
    const [taken] = await b.claim({ now: t1, limit: 10 });
    assert.equal(taken?.id, id);
    assert.equal(taken?.recipients.length, 2);
    // a wakes up: its results, release and expansion are fenced off
    assert.equal(await a.record(claimed, delivered(claimed)), false);
    assert.equal(await a.release(claimed), false);
    assert.equal(
      await a.expand(claimed, [{ address: 'p@example.org', targets: ['t@x.test'] }]),
      false,
    );
    assert.deepEqual((await b.list())[0]?.recipients, ['p@example.org', 'q@example.net']);
    assert.equal(await b.record(taken, delivered(taken)), true);
    assert.deepEqual(await b.list(), []);
    await a.close();
    await b.close();
  });

  test('acknowledged messages survive a crash of PostgreSQL', async () => {
    const url = await server.database();
    const s = await PgQueueStore.open({ url, node: 'a' });
    const ids = await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        s.enqueue(env(n, [`r${n}@example.org`]), Buffer.from(`message ${n}\r\n\r\n`)),
      ),
    );
    await server.crash();
    await server.start();
    const again = await PgQueueStore.open({ url, node: 'b' });
    assert.deepEqual((await again.list()).map((m) => m.id).sort(), [...ids].sort());
    const m = await again.message(ids[7]!);
    const chunks: Buffer[] = [];
    for await (const c of m!.open()) chunks.push(c as Buffer);
    assert.equal(Buffer.concat(chunks).toString(), 'message 7\r\n\r\n');
    await again.close();
    await s.close();
  });

  test('while PostgreSQL is down enqueue rejects, and once it is back the same store works again', async () => {
    const url = await server.database();
    const s = await PgQueueStore.open({ url, node: 'a' });
    const other = await PgQueueStore.open({ url, node: 'b' });
    await s.enqueue(env(1, ['r@example.org']), Buffer.from('before\r\n\r\n'));
    await server.crash();
    try {
      await assert.rejects(s.enqueue(env(2, ['r@example.org']), Buffer.from('during\r\n\r\n')));
      await assert.rejects(s.claim({ now: Date.now(), limit: 10 }));
      // and a store closes without the database
      await other.close();
    } finally {
      await server.start();
    }
    const id = await s.enqueue(env(3, ['r@example.org']), Buffer.from('after\r\n\r\n'));
    assert.equal((await s.list()).length, 2);
    const claimed = await s.claim({ now: Date.now(), limit: 10 });
    assert.ok(claimed.some((c) => c.id === id));
    await s.close();
  });
});
