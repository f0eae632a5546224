/**
 * Memory under hostile DATA on port 25 (issue 12, defect 3): a 10 MB header
 * is refused while it arrives, four parallel 45 MB bodies are spooled whole
 * without the server holding them, and another session keeps getting
 * answers meanwhile. The figures are the real `posta serve` process's, read
 * from /proc/<pid>/status (VmRSS before, VmHWM after: the peak).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp, addCatchAll, readQueue } from '../helpers/smtp.ts';

const MB = 1024 * 1024;

function status(s: TestServer): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${s.child.pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1]);
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
}

async function openData(s: TestServer, n: number): Promise<RawSmtp> {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd('EHLO sender.test')).code, 250);
  assert.equal((await c.cmd('MAIL FROM:<sender@elsewhere.example>')).code, 250);
  assert.equal((await c.cmd(`RCPT TO:<user${n}@example.test>`)).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  return c;
}

/** `size` bytes of 76-octet lines (as base64 has them), each ending in CRLF. */
function lines(prefix: string, size: number, seed: number): Buffer {
  const line = Buffer.from(`${prefix}${'x'.repeat(76 - prefix.length - 2)}\r\n`);
  const out = Buffer.allocUnsafe(Math.floor(size / line.length) * line.length);
  for (let i = 0; i < out.length; i += line.length) line.copy(out, i);
  out.write(String(seed).padStart(8, '0'), prefix.length); // each message its own bytes
  return out;
}

/** Sends `data` in 1 MiB writes, waiting for the socket to drain, then the end of DATA. */
async function send(c: RawSmtp, data: Buffer): Promise<void> {
  for (let i = 0; i < data.length; i += MB) {
    if (!c.socket.write(data.subarray(i, i + MB))) {
      await new Promise((resolve) => c.socket.once('drain', resolve));
    }
  }
  c.write('.\r\n');
}

/**
 * One small message on port 25 first, so the baseline is of a server that has
 * loaded what checking a message needs (posta loads it on first use) and
 * started a worker thread, not of a cold one.
 */
async function warmUp(s: TestServer): Promise<void> {
  const c = await openData(s, 0);
  c.write('From: warm@elsewhere.example\r\nSubject: warm up\r\n\r\nwarm\r\n.\r\n');
  assert.equal((await c.reply(30_000)).code, 250);
  c.close();
}

const report = (what: string, before: number, after: number) =>
  console.log(`${what}: RSS ${Math.round(before / MB)} MB -> peak ${Math.round(after / MB)} MB`);

test('a 10 MB header on port 25 is refused with 552 5.3.4 and is not held', async () => {
  const s = await startServer();
  try {
    await addCatchAll(s);
    const before = status(s).rss;
    const c = await openData(s, 1);
    const header = lines('X-Filler: ', 10 * MB, 1);
    await send(
      c,
      Buffer.concat([
        Buffer.from('From: a@elsewhere.example\r\n'),
        header,
        Buffer.from('\r\nbody\r\n'),
      ]),
    );
    const r = await c.reply(60_000);
    const peak = status(s).hwm;
    report('10 MB header', before, peak);
    assert.equal(r.code, 552, r.raw);
    assert.match(r.raw, /5\.3\.4 The header section exceeds \d+ bytes/);
    assert.equal((await c.cmd('NOOP')).code, 250, 'the session goes on');
    c.close();
    assert.ok(peak - before < 64 * MB, `RSS grew by ${Math.round((peak - before) / MB)} MB`);
    assert.equal(readQueue(s.dir).length, 0);
  } finally {
    await s.stop();
  }
});

test('four parallel 45 MB bodies are queued whole, memory stays bounded, NOOP is answered', async () => {
  const s = await startServer({ extraToml: '[limits]\nmessage_size = 60000000' });
  try {
    await addCatchAll(s);
    await warmUp(s);
    const before = status(s).rss;
    const other = await RawSmtp.connect(s.host, s.ports.smtp);
    assert.equal((await other.reply()).code, 220);
    assert.equal((await other.cmd('EHLO other.test')).code, 250);
    const messages = [1, 2, 3, 4].map((n) =>
      Buffer.concat([
        Buffer.from(`From: a${n}@elsewhere.example\r\nSubject: big ${n}\r\n\r\n`),
        lines('', 45_000_000, n),
      ]),
    );
    let done = false;
    const sessions = Promise.all(
      messages.map(async (m, i) => {
        const c = await openData(s, i + 1);
        await send(c, m);
        const r = await c.reply(120_000);
        c.close();
        return r;
      }),
    ).finally(() => (done = true));
    // (c) another session is answered throughout (a generous upper bound, not a figure).
    let noops = 0;
    let slowest = 0;
    while (!done) {
      const sent = Date.now();
      assert.equal((await other.cmd('NOOP', 3000)).code, 250);
      slowest = Math.max(slowest, Date.now() - sent);
      noops++;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const replies = await sessions;
    other.close();
    const peak = status(s).hwm;
    report('4 x 45 MB bodies', before, peak);
    console.log(`slowest of ${noops} NOOPs meanwhile: ${slowest} ms`);
    for (const r of replies) assert.equal(r.code, 250, r.raw);
    assert.ok(noops > 0);
    const queue = readQueue(s.dir).filter((q) => !q.data.includes('Subject: warm up'));
    assert.equal(queue.length, 4);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const want = new Set(messages.map(sha));
    for (const q of queue) {
      const data = Buffer.from(q.data, 'latin1');
      // what posta adds (Received, Authentication-Results) sits on top of the message
      const tail = data.subarray(data.length - 45_000_000 - 60);
      const start = tail.indexOf('From: a');
      assert.ok(want.delete(sha(tail.subarray(start))), `message ${q.id} is not one that was sent`);
    }
    assert.ok(peak - before < 150 * MB, `RSS grew by ${Math.round((peak - before) / MB)} MB`);
  } finally {
    await s.stop();
  }
});

test('with the memory budget spent, a new DATA gets 452 4.3.1 and the bytes are not held', async () => {
  // the smallest budget: 1 MiB, about what one message under the spool threshold holds
  const s = await startServer({ extraToml: `[limits]\ndata_memory = ${MB}` });
  try {
    await addCatchAll(s);
    // A holds about 0.95 MiB in memory and waits before its final dot
    const a = await openData(s, 1);
    const held = Buffer.concat([
      Buffer.from('From: a@elsewhere.example\r\n\r\n'),
      lines('', 1_000_000, 1),
    ]);
    a.write(held);
    await sleep(1000); // for A's bytes to reach the server
    // B's header cannot fit beside it
    const b = await openData(s, 2);
    await send(b, Buffer.concat([lines('X-Filler: ', 200_000, 2), Buffer.from('\r\nbody\r\n')]));
    const busy = await b.reply(30_000);
    assert.equal(busy.code, 452, busy.raw);
    assert.match(busy.raw, /4\.3\.1 /);
    a.write('.\r\n');
    const ok = await a.reply(30_000);
    assert.equal(ok.code, 250, ok.raw);
    // A gave its bytes back: the same message from B now goes in
    assert.equal((await b.cmd('MAIL FROM:<sender@elsewhere.example>')).code, 250);
    assert.equal((await b.cmd('RCPT TO:<user2@example.test>')).code, 250);
    assert.equal((await b.cmd('DATA')).code, 354);
    await send(b, Buffer.concat([lines('X-Filler: ', 200_000, 2), Buffer.from('\r\nbody\r\n')]));
    assert.equal((await b.reply(30_000)).code, 250);
    a.close();
    b.close();
  } finally {
    await s.stop();
  }
});

test('a temporary file goes when its client goes away mid-DATA, and one left by kill -9 at the next start', async () => {
  const s = await startServer();
  try {
    await addCatchAll(s);
    const incoming = join(s.dir, 'data', 'incoming');
    const files = async () => readdir(incoming).catch(() => []);
    const until = async (ok: (n: number) => boolean) => {
      for (let i = 0; i < 1200 && !ok((await files()).length); i++) await sleep(50);
      return (await files()).length;
    };
    const start = async () => {
      const c = await openData(s, 1);
      c.write(Buffer.from('From: a@elsewhere.example\r\n\r\n'));
      c.write(lines('', 5 * MB, 1));
      assert.equal(await until((n) => n > 0), 1, 'the body is in a temporary file');
      return c;
    };
    const from = s.logs.length;
    (await start()).close();
    // the server reads what the kernel still holds before it sees the close:
    // wait for it to say so (it logs after the file is removed), not for a time
    await s.logged(from, 'connection closed during DATA', 120_000);
    assert.equal((await files()).length, 0, 'removed when the client went away');
    const c = await start();
    await s.stop('SIGKILL');
    c.close();
    assert.equal((await files()).length, 1, 'left by the killed process');
    await s.restart();
    assert.equal((await files()).length, 0, 'removed at start');
  } finally {
    await s.stop();
  }
});
