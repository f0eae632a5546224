/**
 * What posta does to the content of a message, end to end: Bcc removed at
 * submission (RFC 5322 §3.6.3) before signing; lines over 998 octets refused
 * at DATA on every port (RFC 5322 §2.1.1); UTF-8 header fields read as
 * UTF-8 (RFC 6532) and carried on with SMTPUTF8 (RFC 6531 §3.4), or bounced
 * with 5.6.7 when the next hop lacks it. Clients: Python's smtplib and raw
 * SMTP; the next hop: aiosmtpd MXes that record MAIL FROM's parameters.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { posta } from '../helpers/posta.ts';
import { dkimpy, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type ReceivedMessage, type Receiver } from '../helpers/receiver.ts';
import { RawSmtp, plain, queued, readQueue, submit } from '../helpers/smtp.ts';

const JURGEN = 'jürgen@example.test';

let dns: DnsServer;
let dkimDns: DnsServer;
let rx: Receiver;
let ascii: Receiver;
let s: TestServer;

before(async () => {
  const mx = randomLoopback();
  const asciiMx = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`] });
  ascii = await startReceiver({ listen: [`${asciiMx}:25`], noSmtpUtf8: true });
  dns = await startDns(
    [
      SOA('test'),
      `dest.test. IN MX 10 mx.dest.test.`,
      `mx.dest.test. IN A ${mx}`,
      `ascii.test. IN MX 10 mx.ascii.test.`,
      `mx.ascii.test. IN A ${asciiMx}`,
      // Mail for it stays in the queue, to be counted there.
      '; servfail stays.test.',
      '',
    ].join('\n'),
  );
  s = await startServer({ dns: dns.endpoint, extraToml: '[delivery]\nfirst_retry = 1' });
  const server = s;
  await server.reload(async () => {
    const added = await posta(['user', 'add', JURGEN, '--password', s.password, '--dir', s.dir]);
    assert.equal(added.code, 0, added.stderr);
    // Bounces to the accounts go to a mailbox on the receiver.
    for (const account of [server.user, JURGEN]) {
      const a = await posta(['alias', 'add', account, 'owner@dest.test', '--dir', server.dir]);
      assert.equal(a.code, 0, a.stderr);
    }
  });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  await ascii?.stop();
  dns?.stop();
  dkimDns?.stop();
});

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

/**
 * Python's smtplib submits `message` (bytes, UTF-8 allowed) on 587 with
 * STARTTLS and AUTH PLAIN of the UTF-8 user name; prints the DATA reply.
 */
function smtplib(o: {
  user: string;
  from: string;
  to: string[];
  message: string;
  smtpUtf8: boolean;
}): Promise<{ code: number; text: string }> {
  const script = `
import base64, smtplib, ssl, sys
host, port, user, pw, sender, rcpts, utf8 = sys.argv[1:8]
msg = sys.stdin.buffer.read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(host, int(port), timeout=15) as c:
    c.ehlo("client.test")
    c.starttls(context=ctx)
    c.ehlo("client.test")
    token = base64.b64encode(("\\0%s\\0%s" % (user, pw)).encode()).decode()
    code, resp = c.docmd("AUTH", "PLAIN " + token)
    assert code == 235, (code, resp)
    code, resp = c.mail(sender, ["SMTPUTF8"] if utf8 == "1" else [])
    assert code == 250, (code, resp)
    for r in rcpts.split(","):
        code, resp = c.rcpt(r)
        assert code == 250, (code, resp)
    code, resp = c.data(msg)
    print(code, resp.decode())
`;
  const args = [s.host, String(s.ports.submission), o.user, s.password, o.from, o.to.join(',')];
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      ['-c', script, ...args, o.smtpUtf8 ? '1' : '0'],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(stderr || err.message));
        const [code, ...text] = stdout.trim().split(' ');
        resolve({ code: Number(code), text: text.join(' ') });
      },
    );
    child.stdin?.end(Buffer.from(o.message.replace(/\r?\n/g, '\r\n'), 'utf8'));
  });
}

async function attempts(id: string): Promise<{ outcome: string; reply: string }[]> {
  const r = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { attempts: { outcome: string; reply: string }[] }).attempts;
}

/** A STARTTLS + AUTH PLAIN session on 587, EHLO done. */
async function authed(): Promise<RawSmtp> {
  const c = await RawSmtp.connect(s.host, s.ports.submission);
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  await c.upgrade();
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  assert.equal((await c.cmd(`AUTH PLAIN ${plain(s.user, s.password)}`)).code, 235);
  return c;
}

test('Bcc is removed at submission, its recipients still get the mail, DKIM verifies', async () => {
  const r = await smtplib({
    user: s.user,
    from: s.user,
    to: ['ann@dest.test', 'hidden@dest.test', 'also@dest.test'],
    message: [
      `From: ${s.user}`,
      'To: ann@dest.test',
      'Bcc: hidden@dest.test,',
      ' also@dest.test',
      'BCC: <hidden@dest.test>',
      'Subject: blind copies',
      '',
      'Bcc: in the body stays',
      '',
    ].join('\n'),
    smtpUtf8: false,
  });
  assert.equal(r.code, 250, r.text);
  const row = await queued(s.dir, r.text);
  assert.deepEqual(row.recipients.sort(), ['also@dest.test', 'ann@dest.test', 'hidden@dest.test']);
  const m = await rx.arrival(to('hidden@dest.test'), 'for the Bcc recipient');
  const text = m.data.toString();
  const header = text.slice(0, text.indexOf('\r\n\r\n'));
  assert.doesNotMatch(header, /^bcc:/im, header);
  assert.doesNotMatch(header, /hidden@|also@/, 'no trace of the blind copies');
  assert.match(header, /^To: ann@dest\.test\r\nSubject: blind copies$/m, 'the rest is kept');
  assert.ok(text.endsWith('\r\n\r\nBcc: in the body stays\r\n'), 'the body is as sent');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
});

const LONG = 'x'.repeat(999);
const lines: [string, string, boolean][] = [
  ['a body line of 998 octets', `\r\n${'y'.repeat(998)}`, true],
  [
    'a folded header field of 2,000 octets',
    `X-Long: ${'x'.repeat(990)}\r\n ${LONG.slice(2)}\r\n`,
    true,
  ],
  ['a body line of 999 octets', `\r\nok\r\n${LONG}`, false],
  ['a header line of 999 octets', `X-Long: ${LONG.slice(8)}\r\n`, false],
];

test('lines over 998 octets are refused at DATA with 550 5.6.0; the session goes on', async (t) => {
  for (const [name, extra, ok] of lines) {
    await t.test(name, async () => {
      const subject = `long: ${name}`;
      const c = await authed();
      try {
        for (const round of [extra, '\r\nafterwards']) {
          assert.equal((await c.cmd(`MAIL FROM:<${s.user}>`)).code, 250);
          assert.equal((await c.cmd('RCPT TO:<nobody@stays.test>')).code, 250);
          assert.equal((await c.cmd('DATA')).code, 354);
          const [head, body] = round.startsWith('\r\n') ? ['', round] : [round, '\r\nbody'];
          const r = await c.cmd(`From: ${s.user}\r\nSubject: ${subject}\r\n${head}${body}\r\n.`);
          if (round === extra && !ok) {
            assert.equal(r.code, 550, r.raw);
            assert.match(
              r.lines[0] ?? '',
              /^5\.6\.0 Line \d+ .* 999 octets long; the limit is 998/,
            );
          } else {
            assert.equal(r.code, 250, r.raw);
          }
        }
      } finally {
        c.close();
      }
      const queued = readQueue(s.dir).filter((m) => m.data.includes(`Subject: ${subject}\r\n`));
      assert.equal(queued.length, ok ? 2 : 1, 'a refused message is not queued');
    });
  }
});

test('inbound (25): a line over 998 octets is refused too, and the session goes on', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO sender.example')).code, 250);
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example>')).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${s.user}>`)).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const r = await c.cmd(`From: a@sender.example\r\nSubject: long\r\n\r\n${LONG}\r\n.`);
    assert.equal(r.code, 550, r.raw);
    assert.match(r.lines[0] ?? '', /^5\.6\.0 Line 4 /);
    assert.equal((await c.cmd('MAIL FROM:<a@sender.example>')).code, 250, 'still usable');
  } finally {
    c.close();
  }
});

test('an account with a non-ASCII address sends; the MX gets SMTPUTF8 and the UTF-8 From', async () => {
  const r = await smtplib({
    user: JURGEN,
    from: JURGEN,
    to: ['bob@dest.test'],
    message: `From: Jürgen <${JURGEN}>\nTo: bob@dest.test\nSubject: Grüße\n\nHallo.\n`,
    smtpUtf8: true,
  });
  assert.equal(r.code, 250, r.text);
  const m = await rx.arrival(to('bob@dest.test'), 'for bob@dest.test');
  assert.equal(m.mailFrom, JURGEN);
  assert.ok(m.mailOptions.includes('SMTPUTF8'), m.mailOptions.join(' '));
  assert.ok(m.data.includes(Buffer.from(`From: Jürgen <${JURGEN}>\r\n`)), 'header bytes as sent');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
});

test('a UTF-8 header with ASCII addresses still gets SMTPUTF8 on the next hop', async () => {
  const r = await smtplib({
    user: s.user,
    from: s.user,
    to: ['cleo@dest.test'],
    message: `From: Zoë <${s.user}>\nTo: cleo@dest.test\nSubject: Grüße\n\nHallo.\n`,
    smtpUtf8: true,
  });
  assert.equal(r.code, 250, r.text);
  const m = await rx.arrival(to('cleo@dest.test'), 'for cleo@dest.test');
  assert.equal(m.mailFrom, s.user);
  assert.ok(m.mailOptions.includes('SMTPUTF8'), m.mailOptions.join(' '));
});

test('an ASCII message goes without SMTPUTF8', async () => {
  await submit(s, 'dan@dest.test', 'plain ascii');
  const m = await rx.arrival(to('dan@dest.test'), 'for dan@dest.test');
  assert.ok(!m.mailOptions.includes('SMTPUTF8'), m.mailOptions.join(' '));
});

test('a next hop without SMTPUTF8 does not get a UTF-8 message: it bounces with 5.6.7', async () => {
  const r = await smtplib({
    user: s.user,
    from: s.user,
    to: ['eve@ascii.test'],
    message: `From: Zoë <${s.user}>\nTo: eve@ascii.test\nSubject: Grüße\n\nHallo.\n`,
    smtpUtf8: true,
  });
  assert.equal(r.code, 250, r.text);
  const dsn = await rx.arrival(
    (m) => m.mailFrom === '' && m.data.includes('Final-Recipient: rfc822; eve@ascii.test'),
    'DSN for eve@ascii.test',
  );
  assert.match(dsn.data.toString(), /^Status: 5\.6\.7/m);
  const id = /queued as (\S+)/.exec(r.text)?.[1] ?? '';
  const [a] = await attempts(id);
  assert.equal(a?.outcome, 'permanent');
  assert.match(a?.reply ?? '', /^550 5\.6\.7 .*SMTPUTF8/);
  assert.deepEqual(await ascii.messages(), [], 'nothing reached the ASCII-only MX');
  // An ASCII message to the same MX goes through.
  await submit(s, 'fay@ascii.test', 'plain ascii');
  await ascii.arrival(to('fay@ascii.test'), 'an ASCII message');
});
