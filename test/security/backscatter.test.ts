/**
 * Backscatter (issue 12, defect 9): port 25 takes mail from senders it cannot
 * verify and forwards it; when the forward target refuses it for good, a DSN
 * to a forged sender would land on whoever was forged. posta bounces only to
 * a sender whose SPF passed or that has an aligned DKIM pass. And a 1 MB line
 * is refused at DATA, so it is never accepted and bounced later.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
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

before(async () => {
  const mx = randomLoopback();
  // One receiver is every MX: the forward target (gmail.test) and the senders'.
  rx = await startReceiver({ listen: [`${mx}:25`] });
  const zone = [
    SOA('test'),
    ...['gmail.test', 'forged.test', 'nospf.test', 'verified.test'].flatMap((d) => [
      `${d}. IN MX 10 mx.${d}.`,
      `mx.${d}. IN A ${mx}`,
    ]),
    'forged.test. IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    'verified.test. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
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

/** One message on port 25 from `from`; the reply to the end of DATA. */
async function inbound(from: string, body = 'Hello.\r\n'): Promise<string> {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO mx.sender.test')).code, 250);
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
    assert.equal((await c.cmd('RCPT TO:<info@example.test>')).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(`From: <${from}>\r\nTo: <info@example.test>\r\nSubject: hi\r\n\r\n${body}`);
    return (await c.cmd('.', 30_000)).raw;
  } finally {
    c.close();
  }
}

test('no DSN to a sender that failed SPF or has none; a verified sender gets one', async () => {
  const from = s.logs.length;
  for (const sender of ['forger@forged.test', 'someone@nospf.test', 'real@verified.test']) {
    assert.match(await inbound(sender), /^250 /);
  }
  // the verified sender's DSN arrives at its MX
  const dsn = await rx.arrival(
    (m) => m.rcptTos.includes('real@verified.test'),
    'the DSN to real@verified.test',
    30_000,
  );
  assert.equal(dsn.mailFrom, '');
  assert.match(dsn.data.toString(), /rejectme@gmail\.test/);
  for (const [to, why] of [
    ['forger@forged.test', 'SPF fail, DKIM none'],
    ['someone@nospf.test', 'SPF none, DKIM none'],
  ] as const) {
    const lines = await s.logged(from, `no bounce: sender not verified (${why})`, 20_000);
    assert.ok(
      // the sender is the SRS address of the forwarded copy: SRS0=hash=tt=DOMAIN=LOCAL@
      lines.some((l) => l.includes(`=${to.split('@')[1]}=${to.split('@')[0]}@`)),
      `posta logs that it sends no DSN to ${to}:\n${s.logs.slice(from).join('\n')}`,
    );
  }
  await sleep(3000); // a DSN queued with the log line would be out by now
  const backscatter = (await rx.messages()).filter((m) =>
    m.rcptTos.some((r) => /@(forged|nospf)\.test$/.test(r)),
  );
  assert.deepEqual(backscatter, [], "the forged senders' MX records nothing");
});

test('a 1 MB line on port 25 is refused at DATA, never accepted and bounced later', async () => {
  const reply = await inbound('real@verified.test', `${'x'.repeat(1024 * 1024)}\r\n`);
  assert.match(reply, /^550 5\.6\.0 Line 5 of the message is 1048576 octets long/);
});
