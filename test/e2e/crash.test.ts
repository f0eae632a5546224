/**
 * Crash safety: under a load of concurrent submissions the server is killed
 * with SIGKILL at a random moment and restarted, several rounds on the same
 * folder.
 *
 * 1. Spool: with delivery held back (DNS unreachable), every message that got
 *    a 250 reply must be in data/queue.db, whole.
 * 2. End to end: with a receiving MX on loopback, every message that got a
 *    250 must arrive there at least once; duplicates (a kill between the
 *    receiver's 250 and our commit) are counted and reported.
 *
 * `npm test` runs a short loop (4 rounds each); `npm run stress` runs
 * hundreds (POSTA_KILL_ROUNDS).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DatabaseSync } from 'node:sqlite';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor } from '../helpers/receiver.ts';

const CLIENTS = 8;
const ROUNDS = Number(process.env.POSTA_KILL_ROUNDS ?? 4);
/** Per client and round: a bound on the loop even if the kill never lands. */
const MAX_MESSAGES_PER_CLIENT = 2000;
const MAX_ROUND_MS = 15_000;
const PADDING = 'x'.repeat(76) + '\r\n';

interface Acked {
  messageId: string;
  queueId: string;
  marker: string;
}

function body(messageId: string, marker: string): string {
  return [
    `This is ${messageId}.`,
    // ~4 KB of padding so a torn write would show as a missing end marker
    PADDING.repeat(50),
    marker,
    '',
  ].join('\r\n');
}

/** One client: a pooled connection sending messages until it fails or is told to stop. */
async function client(
  s: TestServer,
  round: number,
  n: number,
  stop: { now: boolean },
  acked: Acked[],
  max = MAX_MESSAGES_PER_CLIENT,
  onFirstAck: () => void = () => {},
  to = 'someone@example.net',
): Promise<number> {
  const transport = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submissions,
    secure: true,
    pool: true,
    maxConnections: 1,
    maxMessages: Infinity,
    auth: { user: s.user, pass: s.password },
    tls: { rejectUnauthorized: false },
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 5000,
  });
  let failures = 0;
  const deadline = Date.now() + MAX_ROUND_MS;
  try {
    for (let i = 0; i < max && Date.now() < deadline && !stop.now; i++) {
      const tag = `r${round}-c${n}-m${i}-${randomBytes(4).toString('hex')}`;
      const messageId = `<crash-${tag}@example.test>`;
      const marker = `END-OF-BODY-${tag}`;
      try {
        const info = await transport.sendMail({
          from: s.user,
          to,
          subject: `crash ${tag}`,
          messageId,
          text: body(messageId, marker),
        });
        const m = /^250 .*queued as (\S+)/.exec(info.response);
        assert.ok(m, `unexpected reply: ${info.response}`);
        acked.push({ messageId, queueId: m[1]!, marker });
        if (i === 0) onFirstAck();
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err;
        // the server went away mid-transaction: expected once it is killed
        failures++;
        if (stop.now || failures > 3) break;
        await sleep(20);
      }
    }
  } finally {
    transport.close();
  }
  return failures;
}

interface Row {
  id: string;
  message_id: string | null;
  data: Uint8Array;
}

function readQueue(dir: string): { rows: Row[]; recipients: Map<string, string[]> } {
  const db = new DatabaseSync(join(dir, 'data/queue.db'), { readOnly: true });
  try {
    const ok = db.prepare('PRAGMA integrity_check').get() as Record<string, string>;
    assert.equal(Object.values(ok)[0], 'ok', 'queue.db passes integrity_check');
    const rows = db.prepare('SELECT id, message_id, data FROM messages').all() as unknown as Row[];
    const recipients = new Map<string, string[]>();
    const rcpts = db.prepare('SELECT message, address FROM recipients').all() as unknown as {
      message: string;
      address: string;
    }[];
    for (const r of rcpts) {
      recipients.set(r.message, [...(recipients.get(r.message) ?? []), r.address]);
    }
    return { rows, recipients };
  } finally {
    db.close();
  }
}

/** ROUNDS of: load from CLIENTS clients, kill -9 mid-load, restart. Acked per round. */
async function killRounds(s: TestServer, acked: Acked[], to?: string): Promise<number[]> {
  const perRound: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const before = acked.length;
    const stop = { now: false };
    let flowing = 0;
    let allFlowing = () => {};
    const loadIsFlowing = new Promise<void>((resolve) => (allFlowing = resolve));
    const clients = Array.from({ length: CLIENTS }, (_, n) =>
      client(
        s,
        round,
        n,
        stop,
        acked,
        MAX_MESSAGES_PER_CLIENT,
        () => {
          if (++flowing === CLIENTS / 2) allFlowing();
        },
        to,
      ),
    );
    // AUTH (argon2id, or scrypt before) takes CPU per client;
    // wait until half the clients have a message through (the others are
    // still logging in or sending), then kill at a random moment mid-load
    await Promise.race([loadIsFlowing, sleep(MAX_ROUND_MS / 2)]);
    await sleep(150 + Math.floor(Math.random() * 750));
    const pid = s.child.pid;
    await s.stop('SIGKILL');
    assert.equal(s.child.signalCode, 'SIGKILL', `round ${round}: server ${pid} died of SIGKILL`);
    stop.now = true;
    await Promise.all(clients);
    perRound.push(acked.length - before);

    // no manual step: the same command on the same folder comes back up
    await s.restart();
    assert.notEqual(s.child.pid, pid);
    assert.equal(s.child.exitCode, null, 'restarted server is running');
  }
  return perRound;
}

test('kill -9 mid-load loses no acknowledged message and tears none', async (t) => {
  const s = await startServer();
  t.after(() => s.stop('SIGKILL'));
  const acked: Acked[] = [];
  const perRound = await killRounds(s, acked);
  t.diagnostic(
    `${ROUNDS} kills; acknowledged per round: ${perRound.join(', ')} (total ${acked.length})`,
  );
  assert.ok(acked.length > 0, 'the load got some messages acknowledged before the kills');

  const { rows, recipients } = readQueue(s.dir);
  const byId = new Map(rows.map((r) => [r.id, r]));
  const text = (r: Row) => Buffer.from(r.data).toString('utf8');

  // every acknowledged message is there, under its queue id, with its envelope
  const missing: string[] = [];
  for (const a of acked) {
    const row = byId.get(a.queueId);
    if (!row) {
      missing.push(`${a.queueId} ${a.messageId}`);
      continue;
    }
    const data = text(row);
    assert.ok(
      row.message_id === a.messageId || data.includes(`Message-ID: ${a.messageId}`),
      `${a.queueId} holds ${a.messageId} (message_id column: ${row.message_id})`,
    );
    assert.ok(data.includes(a.marker), `${a.queueId} is whole`);
    assert.deepEqual(recipients.get(a.queueId), ['someone@example.net']);
  }
  assert.deepEqual(missing, [], 'acknowledged messages missing from the queue after kill -9');

  // every queued row (acknowledged or not) is whole: nothing half-written
  for (const row of rows) {
    const data = text(row);
    const m = /crash-(r\d+-c\d+-m\d+-[0-9a-f]+)@example\.test/.exec(data);
    assert.ok(m, `${row.id} carries a test Message-ID`);
    assert.ok(data.includes(`END-OF-BODY-${m[1]}\r\n`), `${row.id} holds the whole body`);
    assert.ok(recipients.has(row.id), `${row.id} has its recipients`);
  }
  assert.ok(rows.length >= acked.length);

  // and the restarted server still takes mail
  const after: Acked[] = [];
  await client(s, 99, 0, { now: false }, after, 3);
  assert.equal(after.length, 3, 'the restarted server accepts submissions');
});

test('kill -9 mid-load and mid-delivery: every acknowledged message reaches the MX', async (t) => {
  const mx = await startMxFor('dest.test');
  const { rx, dns } = mx;
  t.after(() => mx.stop());
  const s = await startServer({
    dns: dns.endpoint,
    extraToml: '[delivery]\nfirst_retry = 1\nmax_retry = 1',
  });
  t.after(() => s.stop('SIGKILL'));
  const acked: Acked[] = [];
  const perRound = await killRounds(s, acked, 'crash@dest.test');
  assert.ok(acked.length > 0, 'the load got some messages acknowledged before the kills');

  // After the last restart the queue drains to the receiver.
  const deadline = Date.now() + 120_000 + ROUNDS * 1000;
  let arrived = new Map<string, number>();
  for (;;) {
    arrived = new Map();
    for (const m of await rx.messages()) {
      const id = /^Message-ID: (<crash-[^>]+>)/im.exec(m.data.toString())?.[1];
      if (id) arrived.set(id, (arrived.get(id) ?? 0) + 1);
    }
    if (acked.every((a) => arrived.has(a.messageId)) || Date.now() > deadline) break;
    await sleep(250);
  }
  const missing = acked.filter((a) => !arrived.has(a.messageId)).map((a) => a.messageId);
  const duplicates = [...arrived.values()].filter((n) => n > 1).length;
  t.diagnostic(
    `${ROUNDS} kills; acknowledged per round: ${perRound.join(', ')} (total ${acked.length}); ` +
      `arrived ${arrived.size} distinct, ${duplicates} more than once; lost ${missing.length}`,
  );
  assert.deepEqual(missing, [], 'acknowledged messages that never reached the MX');
  for (const m of await rx.messages()) {
    const tag = /crash-(r\d+-c\d+-m\d+-[0-9a-f]+)@example\.test/.exec(m.data.toString())?.[1];
    assert.ok(
      tag && m.data.toString().includes(`END-OF-BODY-${tag}`),
      `message ${m.n} arrived whole`,
    );
  }
});
