/**
 * SMTP smuggling, STARTTLS command injection (CVE-2011-0411 style) and bare
 * line endings in commands, all with byte-exact raw sockets, on the three
 * listeners: 25 (inbound, catch-all), 587 (STARTTLS + AUTH) and 465 (TLS +
 * AUTH).
 *
 * The 14 end-of-data variants (x 3 ports = the 42 the attack tried): the ten
 * of hannob's smtpsmug, the two outbound ones of SEC Consult's
 * SMTP-Smuggling-Tools (`\r\n.\r\r\n`, `\r\r\n.\r\r\n`) and the two NUL
 * placements of the smuggling paper's table that are not already a valid
 * `\r\n.\r\n` (`\r\0\n.\r\n`, `\r\n.\r\0\n`). A variant that contains a
 * real `\r\n.\r\n` is no smuggling: the client itself ended the data.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp, addCatchAll, plain, queued, readQueue, type Reply } from '../helpers/smtp.ts';

let s: TestServer;

before(async () => {
  s = await startServer();
  await addCatchAll(s);
});

after(async () => {
  await s.stop();
});

const VARIANTS = [
  '\n.\n',
  '\r.\r',
  '\r.\n',
  '\n.\r',
  '\n.\r\n',
  '\r\n.\n',
  '\r.\r\n',
  '\r\n.\r',
  '\r\n\0.\r\n',
  '\r\n.\0\r\n',
  '\r\n.\r\r\n',
  '\r\r\n.\r\r\n',
  '\r\0\n.\r\n',
  '\r\n.\r\0\n',
];

/** How each listener is reached and what a legitimate transaction on it looks like. */
const PORTS = [
  { port: 'smtp', from: 'sender@elsewhere.example', rcpt: 'user@example.test' },
  { port: 'submission', from: 'i@example.test', rcpt: 'someone@example.net' },
  { port: 'submissions', from: 'i@example.test', rcpt: 'someone@example.net' },
] as const;
type Port = (typeof PORTS)[number];

const HIDDEN =
  'MAIL FROM:<admin@example.test>\r\n' +
  'RCPT TO:<victim@example.test>\r\n' +
  'RCPT TO:<victim@example.net>\r\n' +
  'DATA\r\n' +
  'From: admin@example.test\r\n' +
  '\r\n' +
  'smuggled\r\n';

const show = (v: string) => JSON.stringify(v);

/** Every reply that arrives until the line is quiet for `quietMs`. */
async function drain(c: RawSmtp, quietMs = 1500): Promise<Reply[]> {
  const replies: Reply[] = [];
  while (await c.replyArrives(quietMs)) replies.push(await c.reply());
  return replies;
}

/** Connect to `p`, log in where the port needs it, and open DATA. */
async function openData(p: Port): Promise<RawSmtp> {
  const c = await RawSmtp.connect(s.host, s.ports[p.port], { tls: p.port === 'submissions' });
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd('EHLO sender.test')).code, 250);
  if (p.port === 'submission') {
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    assert.equal((await c.cmd('EHLO sender.test')).code, 250);
  }
  if (p.port !== 'smtp') {
    const auth = await c.cmd(`AUTH PLAIN ${plain(s.user, s.password)}`);
    assert.equal(auth.code, 235, auth.raw);
  }
  assert.equal((await c.cmd(`MAIL FROM:<${p.from}>`)).code, 250);
  assert.equal((await c.cmd(`RCPT TO:<${p.rcpt}>`)).code, 250);
  assert.equal((await c.cmd('DATA')).code, 354);
  return c;
}

const head = (p: Port) => `From: ${p.from}\r\nTo: ${p.rcpt}\r\nSubject: smug\r\n\r\nhello`;

test('control: the same message without a smuggled end of data is accepted on 25', async () => {
  const p = PORTS[0];
  const c = await openData(p);
  try {
    c.write(`${head(p)}\r\nan honest line\r\n.\r\n`);
    const replies = await drain(c);
    assert.equal(replies.length, 1, c.transcript);
    assert.equal(replies[0]?.code, 250, c.transcript);
    const row = await queued(s.dir, replies[0]?.raw ?? '');
    // The delivery workers replace the local recipient by its alias target at once.
    assert.ok(
      ['user@example.test', 'me@elsewhere.example'].includes(row.recipients.join()),
      row.recipients.join(),
    );
  } finally {
    c.close();
  }
});

test('there are 14 variants, 42 with the three ports', () => {
  assert.equal(new Set(VARIANTS).size, 14);
  assert.equal(VARIANTS.length * PORTS.length, 42);
  for (const v of VARIANTS) assert.ok(!v.includes('\r\n.\r\n'), show(v));
});

for (const p of PORTS) {
  for (const variant of VARIANTS) {
    test(`${p.port}: smuggling with ${show(variant)} is refused and hides no transaction`, async () => {
      await smuggle(p, variant);
    });
  }
}

async function smuggle(p: Port, variant: string): Promise<void> {
  const c = await openData(p);
  try {
    c.write(Buffer.from(`${head(p)}${variant}${HIDDEN}.\r\n`, 'latin1'));
    const replies = await drain(c);
    assert.equal(
      replies.length,
      1,
      `exactly one reply, to the one real DATA; got:\n${replies.map((r) => r.raw).join('')}`,
    );
    const [end] = replies;
    assert.ok(end && end.code >= 500 && end.code < 600, `refused: ${end?.raw}`);
    // The session is still in step: the next reply is to our own command.
    if (!c.closed) {
      const rset = await c.cmd('RSET');
      assert.equal(rset.code, 250, rset.raw);
      assert.deepEqual(await drain(c, 300), []);
    }
  } finally {
    c.close();
  }
  await sleep(100);
  for (const m of readQueue(s.dir)) {
    assert.doesNotMatch(m.data, /smuggled/, `queued message ${m.id} carries the smuggled part`);
    for (const victim of ['victim@example.test', 'victim@example.net']) {
      assert.ok(!m.recipients.includes(victim), `queued for ${victim}: ${m.id}`);
    }
    assert.notEqual(m.sender, 'admin@example.test', `queued from admin: ${m.id}`);
  }
}

const INJECTIONS = [
  { port: 'submission', pipelined: 'STARTTLS\r\nNOOP\r\n' },
  { port: 'submission', pipelined: 'STARTTLS\r\nRSET\r\nMAIL FROM:<x@y>\r\n' },
  { port: 'smtp', pipelined: 'STARTTLS\r\nNOOP\r\n' },
  { port: 'smtp', pipelined: 'STARTTLS\r\nRSET\r\nMAIL FROM:<x@y>\r\n' },
] as const;

for (const { port, pipelined } of INJECTIONS) {
  test(`STARTTLS injection on ${port}: ${show(pipelined)} is not answered inside TLS`, async () => {
    const c = await RawSmtp.connect(s.host, s.ports[port]);
    try {
      assert.equal((await c.reply()).code, 220);
      assert.equal((await c.cmd('EHLO client.test')).code, 250);
      c.write(pipelined);
      const starttls = await c.reply();
      assert.equal(starttls.code, 220, starttls.raw);
      // Give the server time to (wrongly) buffer or answer the injected commands.
      await sleep(300);
      await c.upgrade();
      // Nothing may arrive inside TLS before we speak.
      assert.equal(await c.replyArrives(700), false, `unsolicited inside TLS: ${c.buffer}`);
      const ehlo = await c.cmd('EHLO client.test');
      assert.equal(ehlo.code, 250, `first reply inside TLS must answer EHLO: ${ehlo.raw}`);
      assert.match(ehlo.lines[0] ?? '', /^mail\.example\.test\b/, ehlo.raw);
      assert.ok(ehlo.lines.length > 1, `a full EHLO reply: ${ehlo.raw}`);
      const noop = await c.cmd('NOOP');
      assert.equal(noop.code, 250, noop.raw);
      assert.deepEqual(await drain(c, 300), [], 'no stray replies');
    } finally {
      c.close();
    }
  });
}

test('STARTTLS injection on submissions (465): STARTTLS inside TLS is refused, in step', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.submissions, { tls: true });
  try {
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO client.test')).code, 250);
    c.write('STARTTLS\r\nNOOP\r\n');
    const starttls = await c.reply();
    assert.ok(starttls.code >= 500 && starttls.code < 600, `STARTTLS refused: ${starttls.raw}`);
    assert.match(starttls.lines[0] ?? '', /^5\.\d+\.\d+ /, starttls.raw);
    const noop = await c.reply();
    assert.equal(noop.code, 250, noop.raw);
    assert.deepEqual(await drain(c, 300), [], 'no stray replies');
  } finally {
    c.close();
  }
});

const BARE = [
  { name: 'bare LF after EHLO', bytes: 'EHLO x\n' },
  {
    name: 'bare LF in a pipelined MAIL',
    bytes: 'EHLO x\r\nMAIL FROM:<a@elsewhere.example>\nNOOP\r\n',
  },
  { name: 'bare CR in a command', bytes: 'NOOP\rNOOP\r\n' },
];

for (const port of ['smtp', 'submission', 'submissions'] as const) {
  for (const { name, bytes } of BARE) {
    test(`${port}: ${name} is 500 5.5.2 and the connection is closed`, async () => {
      await bare(port, bytes);
    });
  }
}

async function bare(port: 'smtp' | 'submission' | 'submissions', bytes: string): Promise<void> {
  const c = await RawSmtp.connect(s.host, s.ports[port], { tls: port === 'submissions' });
  try {
    assert.equal((await c.reply()).code, 220);
    c.write(bytes);
    let r = await c.reply();
    if (r.code === 250 && bytes.startsWith('EHLO x\r\n')) r = await c.reply();
    assert.equal(r.code, 500, r.raw);
    assert.match(r.lines[0] ?? '', /^5\.5\.2 /);
    assert.ok(await c.closedWithin(5000), 'connection closed');
  } finally {
    c.close();
  }
}
