/**
 * Backscatter (issue 12, defect 9): port 25 takes mail from senders it cannot
 * verify and forwards it; when the forward target refuses it for good, a DSN
 * to a forged sender would land on whoever was forged. posta bounces only to
 * a sender whose SPF passed or that has an aligned DKIM pass. And a 1 MB line
 * is refused at DATA, so it is never accepted and bounced later.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { RawSmtp } from '../helpers/smtp.ts';

let dns: DnsServer;
let rx: Receiver;
let s: TestServer;
/** PEM of signed.test's DKIM key (selector sel), published in the zone. */
let dkimKey: string;

const SENDER_DOMAINS = ['forged.test', 'nospf.test', 'verified.test', 'signed.test', 'other.test'];

before(async () => {
  const mx = randomLoopback();
  // One receiver is every MX: the forward target (gmail.test) and the senders'.
  rx = await startReceiver({ listen: [`${mx}:25`] });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  dkimKey = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const txt = (`v=DKIM1; k=rsa; p=${p}`.match(/.{1,255}/g) ?? []).map((c) => `"${c}"`);
  const zone = [
    SOA('test'),
    ...['gmail.test', ...SENDER_DOMAINS].flatMap((d) => [
      `${d}. IN MX 10 mx.${d}.`,
      `mx.${d}. IN A ${mx}`,
    ]),
    'forged.test. IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    'verified.test. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
    `sel._domainkey.signed.test. IN TXT ${txt.join(' ')}`,
  ].join('\n');
  dns = await startDns(`${zone}\n`);
  s = await startServer({ dns: dns.endpoint, extraToml: '[delivery]\nfirst_retry = 1' });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  await dns.update(`${zone}\n${records.stdout}`);
  // every local address forwards to a mailbox that refuses with 550
  await s.reload(async () => {
    const r = await posta([
      'alias',
      'add',
      '*@example.test',
      'rejectme@gmail.test',
      '--dir',
      s.dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  dns?.stop();
});

function plainMessage(from: string, body = 'Hello.\r\n'): string {
  return `From: <${from}>\r\nTo: <info@example.test>\r\nSubject: hi\r\n\r\n${body}`;
}

/** A message From `from`, DKIM-signed by dkimpy with d=signed.test. */
function signed(from: string): Promise<string> {
  const code =
    'import dkim,sys; m=sys.stdin.buffer.read();' +
    ' sys.stdout.buffer.write(dkim.sign(m, b"sel", b"signed.test", sys.argv[1].encode()) + m)';
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', ['-c', code, dkimKey], (err, stdout) => {
      if (err) reject(new Error(`dkimpy could not sign: ${err.message}`));
      else resolve(stdout);
    });
    child.stdin?.end(plainMessage(from));
  });
}

/** One message on port 25 with envelope sender `from`; the reply to the end of DATA. */
async function inbound(from: string, message = plainMessage(from)): Promise<string> {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO mx.sender.test')).code, 250);
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
    assert.equal((await c.cmd('RCPT TO:<info@example.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(message);
    return (await c.cmd('.', 30_000)).raw;
  } finally {
    c.close();
  }
}

test('no DSN to a sender without SPF pass or aligned DKIM pass; a verified sender gets one', async () => {
  const from = s.logs.length;
  assert.match(await inbound('forger@forged.test'), /^250 /);
  assert.match(await inbound('someone@nospf.test'), /^250 /);
  // signed.test has no SPF record: its DKIM pass verifies it; other.test's sender does not align
  assert.match(await inbound('news@signed.test', await signed('news@signed.test')), /^250 /);
  assert.match(await inbound('x@other.test', await signed('x@other.test')), /^250 /);
  assert.match(await inbound('real@verified.test'), /^250 /);
  // the verified senders' DSNs arrive at their MX
  for (const to of ['news@signed.test', 'real@verified.test']) {
    const dsn = await rx.arrival((m) => m.rcptTos.includes(to), `the DSN to ${to}`, 30_000);
    assert.equal(dsn.mailFrom, '');
    assert.match(dsn.data.toString(), /rejectme@gmail\.test/);
  }
  await sleep(3000); // DSNs to the others, had they been queued first, would be out by now
  const backscatter = (await rx.messages()).filter((m) =>
    m.rcptTos.some((r) => /@(forged|nospf|other)\.test$/.test(r)),
  );
  assert.deepEqual(
    backscatter.map((m) => m.rcptTos),
    [],
    'the MX of the unverified senders records nothing',
  );
  for (const [to, why] of [
    ['forger@forged.test', 'SPF fail, DKIM none'],
    ['someone@nospf.test', 'SPF none, DKIM none'],
    ['x@other.test', 'SPF none, DKIM unaligned'],
  ] as const) {
    const lines = await s.logged(from, `no bounce: sender not verified (${why})`, 20_000);
    const [local, domain] = to.split('@');
    assert.ok(
      // the sender is the SRS address of the forwarded copy: SRS0=hash=tt=DOMAIN=LOCAL@
      lines.some((l) => l.includes(`=${domain}=${local}@`)),
      `posta logs that it sends no DSN to ${to}:\n${s.logs.slice(from).join('\n')}`,
    );
  }
});

test('a 1 MB line on port 25 is refused at DATA, never accepted and bounced later', async () => {
  const reply = await inbound(
    'real@verified.test',
    plainMessage('real@verified.test', `${'x'.repeat(1024 * 1024)}\r\n`),
  );
  assert.match(reply, /^550 5\.6\.0 Line 5 of the message is 1048576 octets long/);
});
