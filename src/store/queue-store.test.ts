/**
 * The QueueStore contract: one suite, run against every engine in `engines`.
 * Written against the interface only; an engine joins by adding its factory.
 */
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { QueueStore } from './queue-store.ts';
import type { AttemptResult, Envelope } from '../queue/spool.ts';
import { PgQueueStore } from './postgres/store.ts';
import { SqliteQueueStore } from './sqlite/queue.ts';
import { Spool } from '../queue/spool.ts';
import { postgresMissing, startPostgres, type Postgres } from '../../test/helpers/postgres.ts';

export interface StoreFactory {
  name: string;
  /** Several nodes can work on one queue (open() with another name is another node). */
  manyNodes: boolean;
  /** Why it cannot run here, or null. */
  missing(): string | null;
  /** Once per file: start what the engine needs. */
  setUp(): Promise<void>;
  tearDown(): Promise<void>;
  /** Before each test: a new, empty queue that open() then opens. */
  fresh(): Promise<void>;
  /** A store on the current queue, as node `node`. */
  open(node: string): Promise<QueueStore>;
}

let pg: Postgres | null = null;
let pgUrl = '';
const postgres: StoreFactory = {
  name: 'postgres',
  manyNodes: true,
  missing: postgresMissing,
  setUp: async () => {
    pg = await startPostgres();
  },
  tearDown: async () => {
    await pg?.stop();
  },
  fresh: async () => {
    pgUrl = await pg!.database();
  },
  open: (node) => PgQueueStore.open({ url: pgUrl, node }),
};

let dir = '';
const sqlite: StoreFactory = {
  name: 'sqlite',
  manyNodes: false,
  missing: () => null,
  setUp: () => Promise.resolve(),
  tearDown: () => Promise.resolve(),
  fresh: async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = await mkdtemp(join(tmpdir(), 'posta-store-'));
  },
  // one node: its leases live in the store, so each open is the same node again
  open: (node) => Promise.resolve(new SqliteQueueStore(new Spool(dir), node)),
};

export const engines: StoreFactory[] = [sqlite, postgres];

const env = (n: number, recipients = [`r${n}@example.org`, `x${n}@example.net`]): Envelope => ({
  sender: `s${n}@example.test`,
  recipients,
  source: 'submission',
  clientIp: '127.0.0.1',
  messageId: `<m${n}@example.test>`,
});

async function text(s: QueueStore, id: string): Promise<Buffer | null> {
  const m = await s.message(id);
  if (!m) return null;
  const chunks: Buffer[] = [];
  for await (const c of m.open()) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The next millisecond: messages enqueued after it are due later than those before. */
async function tick(): Promise<void> {
  const t = Date.now();
  while (Date.now() === t) await new Promise((r) => setTimeout(r, 1));
}

const result = (o: Partial<AttemptResult> = {}): AttemptResult => ({
  attempts: [],
  retry: new Map(),
  notices: [],
  ...o,
});

const attempt = (
  message: string,
  recipient: string,
  outcome: 'delivered' | 'transient' | 'permanent',
) => ({ message, recipient, at: Date.now(), durationMs: 5, outcome, reply: `${outcome} reply` });

const FAR = Date.now() + 365 * 24 * 3600 * 1000;

for (const engine of engines) {
  describe(`QueueStore on ${engine.name}`, { skip: engine.missing() ?? false }, () => {
    let s: QueueStore;
    before(() => engine.setUp());
    after(() => engine.tearDown());
    beforeEach(async () => {
      await engine.fresh();
      s = await engine.open('node-a');
    });
    afterEach(() => s.close());

    test('a small message goes in and comes back whole, with its envelope', async () => {
      const data = Buffer.from('Subject: hi\r\nFrom: a@example.test\r\n\r\nbody line\r\n');
      const id = await s.enqueue(env(1), data);
      const list = await s.list();
      assert.equal(list.length, 1);
      const m = list[0]!;
      assert.equal(m.id, id);
      assert.equal(m.sender, 's1@example.test');
      assert.equal(m.source, 'submission');
      assert.equal(m.messageId, '<m1@example.test>');
      assert.equal(m.size, data.length);
      assert.deepEqual([...m.recipients].sort(), ['r1@example.org', 'x1@example.net']);
      const stored = await s.message(id);
      assert.equal(stored?.size, data.length);
      assert.equal(stored?.head.toString(), 'Subject: hi\r\nFrom: a@example.test\r\n\r\n');
      assert.deepEqual(await text(s, id), data);
      assert.equal(await s.message('no-such-id'), null);
    });

    test('a held message with its body in a file over 1 MiB is stored in parts and read back', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'store-held-'));
      const head = Buffer.from('Subject: big\r\n\r\n');
      const body = Buffer.alloc(2.5 * 1024 * 1024 + 17);
      for (let i = 0; i < body.length; i++) body[i] = 65 + ((i * 7) % 26);
      const junk = Buffer.from('junk before the body');
      const path = join(dir, 'body');
      await writeFile(path, Buffer.concat([junk, body]));
      const id = await s.enqueue(env(2), {
        head,
        body: { path, start: junk.length, size: body.length },
      });
      const stored = await s.message(id);
      assert.equal(stored?.size, head.length + body.length);
      assert.deepEqual(stored?.head, head);
      assert.deepEqual(await text(s, id), Buffer.concat([head, body]));
      assert.equal((await s.list())[0]?.size, head.length + body.length);
      await rm(dir, { recursive: true });
    });

    test('a failing enqueue does not take the others of its commit down', async () => {
      await s.enqueue(env(1), Buffer.from('first\r\n\r\n'), 'dup-id');
      const results = await Promise.allSettled([
        s.enqueue(env(2), Buffer.from('a\r\n\r\n')),
        s.enqueue(env(3), Buffer.from('again\r\n\r\n'), 'dup-id'),
        s.enqueue(env(4), Buffer.from('b\r\n\r\n')),
      ]);
      assert.deepEqual(
        results.map((r) => r.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      assert.equal((await s.list()).length, 3);
      assert.equal((await text(s, 'dup-id'))?.toString(), 'first\r\n\r\n');
    });

    test('a held message whose file is short is refused, and nothing of it stays', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'store-held-'));
      const path = join(dir, 'body');
      await writeFile(path, Buffer.alloc(1024 * 1024 + 10, 'x'));
      const head = Buffer.from('Subject: short\r\n\r\n');
      await assert.rejects(
        s.enqueue(env(5), { head, body: { path, start: 0, size: 3 * 1024 * 1024 } }, 'short-id'),
      );
      assert.deepEqual(await s.list(), []);
      assert.equal(await s.message('short-id'), null);
      await rm(dir, { recursive: true });
    });

    test('claims are oldest first, at most `limit` recipients, grouped by message', async () => {
      const ids: string[] = [];
      for (let n = 0; n < 3; n++) {
        ids.push(await s.enqueue(env(n), Buffer.from(`m${n}\r\n\r\n`)));
        await tick();
      }
      const c = await s.claim({ now: Date.now(), limit: 3 });
      assert.deepEqual(
        c.map((m) => m.id),
        ids.slice(0, 2),
      );
      assert.equal(c[0]?.recipients.length, 2);
      assert.equal(c[1]?.recipients.length, 1);
      assert.equal(c[0]?.sender, 's0@example.test');
      assert.equal(c[0]?.source, 'submission');
      assert.equal(c[0]?.warned, false);
      assert.equal(c[0]?.recipients[0]?.attempts, 0);
      assert.notEqual(c[0]?.lease, c[1]?.lease);
      // nothing is due before it was enqueued
      assert.deepEqual(await s.claim({ now: 0, limit: 10 }), []);
    });

    test('fullDomains, skip and scope leave recipients out', async () => {
      const a = await s.enqueue(env(1, ['a@one.test', 'b@two.test']), Buffer.from('a\r\n\r\n'));
      const b = await s.enqueue(env(2, ['c@one.test']), Buffer.from('b\r\n\r\n'));
      const now = Date.now();
      const addresses = (cs: { recipients: { address: string }[] }[]) =>
        cs.flatMap((m) => m.recipients.map((r) => r.address)).sort();
      let c = await s.claim({ now, limit: 10, fullDomains: new Set(['one.test']) });
      assert.deepEqual(addresses(c), ['b@two.test']);
      for (const m of c) assert.equal(await s.release(m), true);
      c = await s.claim({ now, limit: 10, skip: new Set([a]) });
      assert.deepEqual(addresses(c), ['c@one.test']);
      for (const m of c) assert.equal(await s.release(m), true);
      c = await s.claim({ now, limit: 10, scope: { domains: ['one.test'] } });
      assert.deepEqual(addresses(c), ['a@one.test', 'c@one.test']);
      for (const m of c) assert.equal(await s.release(m), true);
      c = await s.claim({ now, limit: 10, scope: { messages: [b] } });
      assert.deepEqual(addresses(c), ['c@one.test']);
    });

    test('a claimed recipient is not claimed again until its claim is released', async () => {
      const id = await s.enqueue(env(1), Buffer.from('x\r\n\r\n'));
      const now = Date.now();
      const [first] = await s.claim({ now, limit: 10 });
      assert.equal(first?.id, id);
      assert.deepEqual(await s.claim({ now, limit: 10 }), []);
      // on one node, this node is the only one
      const other = engine.manyNodes ? await engine.open('node-b') : s;
      assert.deepEqual(await other.claim({ now, limit: 10 }), []);
      assert.equal(await s.release(first), true);
      const [again] = await other.claim({ now, limit: 10 });
      assert.equal(again?.id, id);
      assert.equal(again?.recipients.length, 2);
      assert.notEqual(again?.lease, first?.lease);
      assert.equal(await other.release(again), true);
      if (other !== s) await other.close();
    });

    test('record: retries wait, done recipients go, notices are queued, warned sticks', async () => {
      const id = await s.enqueue(env(1), Buffer.from('x\r\n\r\n'));
      const [c] = await s.claim({ now: Date.now(), limit: 10 });
      const later = Date.now() + 60_000;
      const ok = await s.record(
        c!,
        result({
          attempts: [
            attempt(id, 'r1@example.org', 'delivered'),
            attempt(id, 'x1@example.net', 'transient'),
          ],
          retry: new Map([['x1@example.net', later]]),
          notices: [
            {
              id: 'notice-1',
              envelope: { ...env(9, ['s1@example.test']), sender: '', source: 'bounce' },
              data: Buffer.from('Subject: delayed\r\n\r\nstill trying\r\n'),
            },
          ],
          warned: true,
        }),
      );
      assert.equal(ok, true);
      // the claim goes on after a record, until it is released
      assert.deepEqual(
        await s.claim({ now: Date.now(), limit: 10 }).then((x) => x.map((m) => m.id)),
        ['notice-1'],
      );
      assert.equal(await s.release(c!), true);
      const list = await s.list();
      const m = list.find((x) => x.id === id);
      assert.deepEqual(m?.recipients, ['x1@example.net']);
      const notice = list.find((x) => x.id === 'notice-1');
      assert.equal(notice?.source, 'bounce');
      assert.equal(notice?.sender, '');
      assert.equal(
        (await text(s, 'notice-1'))?.toString(),
        'Subject: delayed\r\n\r\nstill trying\r\n',
      );
      // the retry is not due before its time, the notice is
      assert.deepEqual(await s.claim({ now: Date.now(), limit: 10 }), []);
      const [retry] = await s.claim({ now: later, limit: 10 });
      assert.equal(retry?.id, id);
      assert.equal(retry?.warned, true);
      assert.deepEqual(retry?.recipients, [
        { address: 'x1@example.net', attempts: 1, warmupMs: 0 },
      ]);
      assert.equal(
        await s.record(retry, result({ attempts: [attempt(id, 'x1@example.net', 'permanent')] })),
        true,
      );
      assert.equal(await s.message(id), null);
      assert.deepEqual(
        (await s.list()).map((x) => x.id),
        ['notice-1'],
      );
    });

    test("a hard bounce recorded with its attempt joins the sending domain's suppression list", async () => {
      const id = await s.enqueue(env(1), Buffer.from('x\r\n\r\n'));
      const [c] = await s.claim({ now: Date.now(), limit: 10 });
      assert.equal(await s.suppressed([]).then((x) => x.size), 0);
      const ok = await s.record(
        c!,
        result({
          attempts: [attempt(id, 'r1@example.org', 'permanent')],
          suppress: [
            { domain: 'example.test', address: 'R1@Example.org', reason: 'BOUNCE', message: id },
          ],
        }),
      );
      assert.equal(ok, true);
      const found = await s.suppressed([
        { domain: 'example.test', address: 'r1@EXAMPLE.org' },
        { domain: 'other.test', address: 'r1@example.org' },
        { domain: 'example.test', address: 'x1@example.net' },
      ]);
      // addresses compare lower-cased; the list is the sending domain's alone
      assert.deepEqual([...found], ['example.test r1@example.org']);
      assert.equal(await s.release(c!), true);
    });

    test('the suppression lists: an address added by hand is what the scheduler finds; listed newest first, by domain, reason and address; removed once', async () => {
      const list = s.suppressions;
      await list.add({ domain: 'hand.test', address: 'A@Example.org', reason: 'COMPLAINT' });
      await list.add({
        domain: 'hand.test',
        address: 'b@example.org',
        reason: 'BOUNCE',
        message: 'm1',
      });
      await list.add({ domain: 'else.test', address: 'a@example.org', reason: 'UNSUBSCRIBE' });
      // added again: the entry is updated, not doubled
      await list.add({ domain: 'hand.test', address: 'a@example.org', reason: 'BOUNCE' });
      assert.deepEqual(
        [...(await s.suppressed([{ domain: 'hand.test', address: 'a@example.org' }]))],
        ['hand.test a@example.org'],
      );
      const all = await list.list({ domains: ['hand.test'] });
      assert.deepEqual(
        all.map((x) => [x.address, x.reason, x.message]),
        [
          ['a@example.org', 'BOUNCE', null],
          ['b@example.org', 'BOUNCE', 'm1'],
        ],
      );
      assert.equal(typeof all[0]!.createdAt, 'number');
      assert.deepEqual(
        (await list.list({ domains: ['else.test', 'hand.test'], address: 'A@example.ORG' }))
          .map((x) => x.domain)
          .sort(),
        ['else.test', 'hand.test'],
      );
      assert.deepEqual((await list.list({ domains: ['else.test'], reason: 'BOUNCE' })).length, 0);
      assert.deepEqual(await list.list({ domains: [] }), []);
      assert.deepEqual(
        await list.list({ domains: ['hand.test'], from: all[0]!.createdAt + 60_000 }),
        [],
      );
      assert.equal(await list.remove('hand.test', 'A@example.org'), true);
      assert.equal(await list.remove('hand.test', 'a@example.org'), false);
      assert.equal(
        (await s.suppressed([{ domain: 'hand.test', address: 'a@example.org' }])).size,
        0,
      );
    });

    test('an unsubscribe: the link and tags a queued message was given, and its events and suppression in one commit', async () => {
      const id = await s.enqueue(
        {
          ...env(7, ['news@example.org']),
          tags: { 'ses:topic': ['weekly'] },
          unsubscribe: { token: 'ABCDEF', domain: 'example.test', address: 'News@example.org' },
        },
        Buffer.from('Subject: weekly\r\n\r\nx\r\n'),
      );
      assert.deepEqual(await s.unsubscribeLink('abcdef'), {
        token: 'abcdef',
        domain: 'example.test',
        address: 'news@example.org',
        message: id,
      });
      assert.equal(await s.unsubscribeLink('nosuch'), undefined);
      assert.deepEqual(await s.mailTags(id), { 'ses:topic': ['weekly'] });
      assert.deepEqual(await s.mailTags('nosuch'), {});
      await s.recordEvents({
        events: [
          {
            message: id,
            type: 'Subscription',
            at: Date.now(),
            recipients: ['news@example.org'],
            detail: {},
          },
        ],
        suppress: [
          {
            domain: 'example.test',
            address: 'news@example.org',
            reason: 'UNSUBSCRIBE',
            message: id,
          },
        ],
      });
      const [entry] = await s.suppressions.list({
        domains: ['example.test'],
        address: 'news@example.org',
      });
      assert.equal(entry?.reason, 'UNSUBSCRIBE');
      assert.equal(entry?.message, id);
    });

    test('the overview posta status shows: messages, recipients never tried and waiting, the attempts of the last hour', async () => {
      const before = await s.overview();
      const id = await s.enqueue(
        env(9, ['w1@example.org', 'w2@example.org']),
        Buffer.from('x\r\n\r\n'),
      );
      const claims = await s.claim({ now: Date.now(), limit: 100 });
      const c = claims.find((x) => x.id === id);
      assert.ok(c, 'the new message is claimed');
      for (const other of claims) if (other !== c) await s.release(other);
      assert.equal(
        await s.record(
          c,
          result({
            attempts: [attempt(id, 'w1@example.org', 'transient')],
            retry: new Map([['w1@example.org', FAR]]),
          }),
        ),
        true,
      );
      await s.release(c);
      const after = await s.overview();
      assert.equal(after.messages - before.messages, 1);
      assert.equal(after.deferred - before.deferred, 1, 'w1 was tried and waits');
      assert.equal(after.queued - before.queued, 1, 'w2 was never tried');
      assert.equal((after.lastHour.transient ?? 0) - (before.lastHour.transient ?? 0), 1);
      assert.equal((after.lastDay.transient ?? 0) - (before.lastDay.transient ?? 0), 1);
      assert.equal(after.lastHour.delivered, before.lastHour.delivered);
    });

    test('expand replaces a recipient by its targets, with a new sender', async () => {
      const id = await s.enqueue(
        env(1, ['alias@local.test', 'o@other.test']),
        Buffer.from('x\r\n\r\n'),
      );
      const [c] = await s.claim({ now: Date.now(), limit: 10 });
      assert.equal(
        await s.expand(
          c!,
          [{ address: 'alias@local.test', targets: ['t1@far.test', 't2@far.test'] }],
          'srs0=x@local.test',
        ),
        true,
      );
      assert.equal(await s.release(c!), true);
      const [after] = await s.claim({ now: Date.now() + 1000, limit: 10 });
      assert.equal(after?.id, id);
      assert.equal(after?.sender, 'srs0=x@local.test');
      assert.deepEqual(after?.recipients.map((r) => r.address).sort(), [
        'o@other.test',
        't1@far.test',
        't2@far.test',
      ]);
    });

    test('a claim that was taken back writes nothing: record, release and expand resolve false', async () => {
      const id = await s.enqueue(env(1), Buffer.from('x\r\n\r\n'));
      const [c] = await s.claim({ now: Date.now(), limit: 10 });
      assert.equal(await s.release(c!), true);
      const [current] = await s.claim({ now: Date.now(), limit: 10 });
      const stale = { id, lease: c!.lease };
      const forged = { id, lease: 'not-a-lease' };
      for (const l of [stale, forged]) {
        assert.equal(
          await s.record(
            l,
            result({
              attempts: [attempt(id, 'r1@example.org', 'delivered')],
              notices: [
                {
                  id: `notice-${l.lease}`,
                  envelope: { ...env(9), source: 'bounce' },
                  data: Buffer.from('n\r\n\r\n'),
                },
              ],
              warned: true,
            }),
          ),
          false,
        );
        assert.equal(await s.release(l), false);
        assert.equal(
          await s.expand(l, [{ address: 'r1@example.org', targets: ['z@z.test'] }], 'new@x.test'),
          false,
        );
      }
      const list = await s.list();
      assert.equal(list.length, 1);
      assert.deepEqual([...list[0]!.recipients].sort(), ['r1@example.org', 'x1@example.net']);
      assert.equal(list[0]?.sender, 's1@example.test');
      // the current claim still holds: nothing else can claim it, and it can record
      assert.deepEqual(await s.claim({ now: Date.now(), limit: 10 }), []);
      assert.equal(await s.release(current!), true);
      const [again] = await s.claim({ now: Date.now(), limit: 10 });
      assert.equal(again?.warned, false);
    });

    test('nextDue and stats follow the queue', async () => {
      assert.equal(await s.nextDue(), null);
      assert.deepEqual(await s.stats(), { messages: 0, oldestSeconds: 0 });
      const before = Date.now();
      const id = await s.enqueue(env(1, ['only@example.org']), Buffer.from('x\r\n\r\n'));
      const due = await s.nextDue();
      assert.ok(due !== null && due >= before && due <= Date.now(), `nextDue ${due}`);
      const st = await s.stats(Date.now() + 10_000);
      assert.equal(st.messages, 1);
      assert.ok(st.oldestSeconds >= 10 && st.oldestSeconds < 20, `oldest ${st.oldestSeconds}`);
      const [c] = await s.claim({ now: Date.now(), limit: 10 });
      await s.record(
        c!,
        result({
          attempts: [attempt(id, 'only@example.org', 'transient')],
          retry: new Map([['only@example.org', FAR]]),
        }),
      );
      await s.release(c!);
      assert.equal(await s.nextDue(), FAR);
    });
  });
}
