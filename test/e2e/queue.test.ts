/**
 * `posta queue list / show / flush / delete / hold / release` beside a running server whose
 * only MX keeps answering 451: the recipient stays deferred with its reply,
 * a flush retries it within seconds, a delete removes it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type Receiver } from '../helpers/receiver.ts';
import { submit } from '../helpers/smtp.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let rx: Receiver;
let s: TestServer;

before(async () => {
  mx = await startMxFor('slow.test');
  rx = mx.rx;
  // The default back-off: the next attempt is minutes away unless flushed.
  s = await startServer({ dns: mx.dns.endpoint });
});

after(async () => {
  await s?.stop();
  await mx?.stop();
});

interface ListEntry {
  id: string;
  sender: string;
  recipients: {
    address: string;
    state: string;
    attempts: number;
    nextAttempt: string;
    lastReply: string | null;
  }[];
}

async function list(): Promise<ListEntry[]> {
  const r = await posta(['queue', 'list', '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ListEntry[];
}

async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('list, show, flush and delete work against the running server', async () => {
  const id = await submit(s, 'always-tempfail-kim@slow.test', 'stuck', 'x');

  const first = await until('the first attempt', async () =>
    (await list()).find((m) => m.id === id && m.recipients[0]?.attempts === 1),
  );
  const r = first.recipients[0];
  assert.equal(first.sender, s.user);
  assert.equal(r?.state, 'deferred');
  assert.match(r?.lastReply ?? '', /^451 4\.3\.0 try again later/);
  assert.ok(Date.parse(r?.nextAttempt ?? '') > Date.now() + 60_000, 'next attempt minutes away');

  const text = await posta(['queue', 'list', '--dir', s.dir]);
  assert.match(text.stdout, new RegExp(`^${id} .* from <${s.user}>`, 'm'));
  assert.match(text.stdout, /<always-tempfail-kim@slow\.test>\s+deferred, 1 attempt, next in \d+m/);
  assert.match(text.stdout, /last reply: 451 4\.3\.0 try again later/);

  const shown = await posta(['queue', 'show', id, '--dir', s.dir]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /Subject:\s+stuck/);
  assert.match(
    shown.stdout,
    /<always-tempfail-kim@slow\.test>\s+transient via mx\.slow\.test \[[\d.]+\] TLSv1\.\d unverified/,
  );

  const flushed = await posta(['queue', 'flush', '--dir', s.dir]);
  assert.equal(flushed.code, 0, flushed.stderr);
  assert.match(flushed.stdout, /^1 waiting recipient will be retried now\./);
  await until('the flushed attempt', async () =>
    (await list()).find((m) => m.id === id && m.recipients[0]?.attempts === 2),
  );

  const deleted = await posta(['queue', 'delete', id, '--dir', s.dir]);
  assert.equal(deleted.code, 0, deleted.stderr);
  assert.deepEqual(await list(), []);
  const empty = await posta(['queue', 'list', '--dir', s.dir]);
  assert.equal(empty.stdout, 'The queue is empty.\n');
  const history = await posta(['queue', 'show', id, '--dir', s.dir]);
  assert.match(history.stdout, /no longer in the queue/);
  assert.equal((history.stdout.match(/ transient via /g) ?? []).length, 2);
  assert.equal((await rx.messages()).length, 0, 'nothing was delivered');
});

test('a held message is not tried, even by a flush, until it is released', async () => {
  // tempfail1: the first attempt gets 451, the next one is accepted
  const id = await submit(s, 'tempfail1-hold@slow.test', 'held', 'x');
  await until('the first attempt', async () =>
    (await list()).find((m) => m.id === id && m.recipients[0]?.attempts === 1),
  );
  const held = await posta(['queue', 'hold', id, '--dir', s.dir]);
  assert.equal(held.code, 0, held.stderr);
  assert.match(held.stdout, new RegExp(`^Held ${id} \\(1 recipient\\)`));
  const again = await posta(['queue', 'hold', id, '--dir', s.dir]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /There is no waiting recipient of/);
  assert.equal((await list()).find((m) => m.id === id)?.recipients[0]?.state, 'held');
  assert.match(
    (await posta(['queue', 'list', '--dir', s.dir])).stdout,
    /<tempfail1-hold@slow\.test>\s+held \(deferred, 1 attempt\)/,
  );
  // a flush and two seconds of scheduling rounds leave it alone
  await posta(['queue', 'flush', '--dir', s.dir]);
  await sleep(2000);
  assert.equal((await list()).find((m) => m.id === id)?.recipients[0]?.attempts, 1);

  const released = await posta(['queue', 'release', id, '--dir', s.dir]);
  assert.equal(released.code, 0, released.stderr);
  assert.match(released.stdout, /1 recipient will be tried now/);
  await until('the delivery', async () =>
    (await rx.messages()).find((m) => m.rcptTos.includes('tempfail1-hold@slow.test')),
  );
  assert.equal(
    (await list()).find((m) => m.id === id),
    undefined,
  );
});

test('queue commands refuse unknown ids and verbs clearly', async () => {
  const missing = await posta(['queue', 'delete', 'nosuchid', '--dir', s.dir]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /There is no message nosuchid in the queue/);
  const show = await posta(['queue', 'show', 'nosuchid', '--dir', s.dir]);
  assert.equal(show.code, 1);
  const verb = await posta(['queue', 'purge', '--dir', s.dir]);
  assert.equal(verb.code, 2);
  assert.match(
    verb.stderr,
    /"purge" is not a queue command; use list, show, flush, delete, hold or release/,
  );
});
