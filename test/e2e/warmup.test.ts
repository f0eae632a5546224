/**
 * Warm-up end to end: a real `posta serve` with [warmup."example.test"]
 * whose day 1 allows 3 messages per destination delivers 3 of 5 to one
 * destination (a real MX on loopback, found through a DNS server on
 * loopback), holds the other 2 in the queue untried, says so in `posta queue
 * list` and `posta status`, and delivers them once the warm-up is a day
 * further on (the start moved back a day, and a restart), counting what it
 * had sent today across the restart. A recipient held past its lifetime and
 * then deferred by its receiver is retried, not bounced.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { submit } from '../helpers/smtp.ts';

let dns: DnsServer;
let rx: Receiver;
let rx2: Receiver;
let s: TestServer;

const day = (offset: number) =>
  new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);

before(async () => {
  // the tests take under a minute: not across a UTC midnight, which would start another day
  const left = 86_400_000 - (Date.now() % 86_400_000);
  if (left < 90_000) await sleep(left + 1000);
  const mx = randomLoopback();
  const mx2 = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`] });
  rx2 = await startReceiver({ listen: [`${mx2}:25`] });
  dns = await startDns(
    [
      SOA('test'),
      'dest.test. IN MX 10 mx.dest.test.',
      'other.test. IN MX 10 mx.dest.test.',
      `mx.dest.test. IN A ${mx}`,
      'late.test. IN MX 10 mx.late.test.',
      `mx.late.test. IN A ${mx2}`,
      '',
    ].join('\n'),
  );
  s = await startServer({
    dns: dns.endpoint,
    extraToml: ['[warmup."example.test"]', `start = ${day(0)}`, 'schedule = [3, 10]'].join('\n'),
  });
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  await rx2?.stop();
  dns?.stop();
});

const arrivedFor = async (domain: string) =>
  (await rx.messages()).filter((m) => m.rcptTos.some((r) => r.endsWith(`@${domain}`)));

interface ListedRecipient {
  address: string;
  state: string;
  attempts: number;
  lastReply: string | null;
}

async function queueJson(): Promise<{ id: string; recipients: ListedRecipient[] }[]> {
  const r = await posta(['queue', 'list', '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { id: string; recipients: ListedRecipient[] }[];
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await get();
    if (ok(v)) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('day 1 allows 3 messages to a destination: 3 of 5 arrive, 2 wait in the queue untried; the next day they arrive', async () => {
  const to = ['a', 'b', 'c', 'd', 'e'].map((l) => `${l}@dest.test`);
  const ids = [];
  for (const address of to) ids.push(await submit(s, address, `warm-up ${address}`));
  // another destination has a count of its own
  await submit(s, 'x@other.test', 'another destination');

  await until(
    '3 arrivals at dest.test',
    () => arrivedFor('dest.test'),
    (m) => m.length >= 3,
  );
  await rx.arrival((m) => m.rcptTos.includes('x@other.test'), 'the other destination');
  const held = await until(
    'two recipients held by warm-up',
    queueJson,
    (q) =>
      q.flatMap((m) => m.recipients).filter((r) => r.lastReply?.startsWith('warm-up')).length === 2,
  );
  await sleep(1500); // a few more rounds of the scheduler: still only 3
  assert.equal((await arrivedFor('dest.test')).length, 3, 'no more than the day allows');
  const waiting = held.flatMap((m) => m.recipients);
  assert.equal(waiting.length, 2);
  for (const r of waiting) {
    assert.ok(to.includes(r.address));
    assert.equal(r.attempts, 0, 'a wait for warm-up is no attempt');
    assert.equal(r.state, 'queued');
    assert.match(
      r.lastReply ?? '',
      new RegExp(
        `^warm-up of example\\.test: day 1 allows 3 messages to dest\\.test, all taken; waiting until ${day(1)}T00:00:00\\.000Z$`,
      ),
    );
  }
  const list = await posta(['queue', 'list', '--dir', s.dir]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(
    list.stdout,
    /queued, next in \d+[smh]\n\s+waiting for warm-up of example\.test: day 1/,
  );
  // nothing was tried, nothing bounced: no attempt in the log, no DSN to the sender
  const show = await posta(['queue', 'show', held[0]?.id ?? '', '--json', '--dir', s.dir]);
  assert.deepEqual((JSON.parse(show.stdout) as { attempts: unknown[] }).attempts, []);
  assert.equal((await rx.messages()).filter((m) => m.mailFrom === '').length, 0, 'no DSN');

  const status = await posta(['status', '--dir', s.dir]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(
    status.stdout,
    /^warm-up\n {2}example\.test +day 1 of 2: 3 a day per destination; sent today: dest\.test 3 \(full\), other\.test 1$/m,
  );
  const json = JSON.parse((await posta(['status', '--json', '--dir', s.dir])).stdout) as {
    warmup: unknown[];
  };
  assert.deepEqual(json.warmup, [
    {
      sender: 'example.test',
      start: day(0),
      state: 'active',
      day: 1,
      days: 2,
      limit: 3,
      today: { 'dest.test': 3, 'other.test': 1 },
    },
  ]);

  // a day on: the warm-up started yesterday, so today is day 2 (10 a day)
  await s.stop();
  const file = join(s.dir, 'posta.toml');
  await writeFile(
    file,
    (await readFile(file, 'utf8')).replace(`start = ${day(0)}`, `start = ${day(-1)}`),
  );
  await s.restart();
  await until(
    'all 5 at dest.test',
    () => arrivedFor('dest.test'),
    (m) => m.length >= 5,
  );
  assert.deepEqual(
    (await arrivedFor('dest.test')).flatMap((m) => m.rcptTos).sort(),
    to,
    'each once',
  );
  await until('an empty queue', queueJson, (q) => q.length === 0);
  const after = await posta(['status', '--dir', s.dir]);
  // today's 3 from before the restart count with the 2 sent since
  assert.match(
    after.stdout,
    /^ {2}example\.test +day 2 of 2: 10 a day per destination; sent today: dest\.test 5, other\.test 1$/m,
  );
});

test('the time warm-up held a recipient does not count against its lifetime: tried past it and deferred, it is retried, not bounced', async () => {
  const s2 = await startServer({
    dns: dns.endpoint,
    extraToml: [
      '[delivery]',
      'lifetime = 2',
      'first_retry = 60',
      '[warmup."example.test"]',
      `start = ${day(0)}`,
      'schedule = [1]',
    ].join('\n'),
  });
  try {
    await submit(s2, 'a@late.test', 'first');
    const second = await submit(s2, 'b@late.test', 'second');
    await rx2.arrival((m) => m.rcptTos.includes('a@late.test'), 'the first');
    const q = async () => {
      const r = await posta(['queue', 'show', second, '--json', '--dir', s2.dir]);
      return JSON.parse(r.stdout) as {
        queued: { recipients: ListedRecipient[] } | null;
        attempts: { outcome: string }[];
      };
    };
    await until('the second held', q, (d) =>
      Boolean(d.queued?.recipients[0]?.lastReply?.startsWith('warm-up')),
    );
    await sleep(2500); // past its lifetime
    // its receiver gone, and room for it: it is tried, and deferred
    await rx2.stop();
    await s2.stop();
    const file = join(s2.dir, 'posta.toml');
    await writeFile(
      file,
      (await readFile(file, 'utf8')).replace('schedule = [1]', 'schedule = [2]'),
    );
    await s2.restart();
    const d = await until('an attempt', q, (x) => x.attempts.length > 0);
    assert.deepEqual(
      d.attempts.map((a) => a.outcome),
      ['transient'],
      'deferred, not expired',
    );
    assert.equal(d.queued?.recipients[0]?.state, 'deferred');
  } finally {
    await s2.stop();
  }
});
