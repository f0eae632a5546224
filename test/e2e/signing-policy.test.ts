/**
 * What posta signs, checked where it matters: at an independent receiving MX,
 * by dkimpy and OpenDKIM, and by pyspf.
 * - A bulk message's List-Unsubscribe and List-Unsubscribe-Post are in h=
 *   (RFC 8058 §4), and both verifiers pass it.
 * - A Reply-To, Cc, Sender or second Content-Type added to the genuine signed
 *   message (a DKIM replay) fails both signatures (RFC 6376 §8.15).
 * - A DSN carries a Received field, its Auto-Submitted is signed, and it
 *   passes SPF at the HELO name with the records `posta dns` prints
 *   (RFC 7208 §2.3: its envelope sender is empty).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { posta, ROOT } from '../helpers/posta.ts';
import { dkimpy, opendkim, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type ReceivedMessage, type Receiver } from '../helpers/receiver.ts';

let dns: DnsServer;
let rx: Receiver;
let s: TestServer;
let zone: string;

before(async () => {
  const mx = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`] });
  zone = [SOA('test'), `dest.test. IN MX 10 mx.dest.test.`, `mx.dest.test. IN A ${mx}`].join('\n');
  dns = await startDns(`${zone}\n`);
  s = await startServer({ dns: dns.endpoint });
  // the account's bounces go to a mailbox on the receiver
  const server = s;
  await server.reload(async () => {
    const r = await posta(['alias', 'add', server.user, 'owner@dest.test', '--dir', server.dir]);
    assert.equal(r.code, 0, r.stderr);
  });
  await publish([]);
  bulk = await sendBulk();
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  dns?.stop();
});

/** Serve the test zone plus example.test's records as `posta dns` prints them. */
async function publish(addresses: string[]): Promise<void> {
  const args = [
    'dns',
    'example.test',
    '--dir',
    s.dir,
    ...addresses.flatMap((a) => ['--address', a]),
  ];
  const records = await posta(args);
  assert.equal(records.code, 0, records.stderr);
  await dns.update(`${zone}\n${SOA('example.test')}\n${records.stdout}`);
}

function pyspf(ip: string, sender: string, helo: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/python3',
      [
        join(ROOT, 'test/peers/with_dns.py'),
        dns.address,
        String(dns.port),
        'spf',
        ip,
        sender,
        helo,
      ],
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
    );
  });
}

const header = (m: Buffer) => m.toString('latin1').split('\r\n\r\n', 1)[0] ?? '';

/** The h= tags of every DKIM-Signature, lower-cased field names. */
function signedFields(m: Buffer): string[][] {
  const unfolded = header(m).replace(/\r\n[ \t]+/g, ' ');
  return [...unfolded.matchAll(/^DKIM-Signature:.*$/gim)].map((sig) => {
    const h = /(?:^|;)\s*h=([^;]+)/.exec(sig[0].slice(sig[0].indexOf(':') + 1))?.[1] ?? '';
    return h.split(':').map((f) => f.trim().toLowerCase());
  });
}

/** Insert a header field at the end of the header section, where a replayer would. */
function withField(m: Buffer, field: string): Buffer {
  const text = m.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return Buffer.from(`${text.slice(0, end)}\r\n${field}${text.slice(end)}`, 'latin1');
}

let bulk: ReceivedMessage;

async function sendBulk(): Promise<ReceivedMessage> {
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submission,
    auth: { user: s.user, pass: s.password },
    tls: { rejectUnauthorized: false },
  });
  await t.sendMail({
    from: s.user,
    to: 'reader@dest.test',
    subject: 'Our December newsletter',
    text: 'News.\r\n',
    headers: {
      'List-Unsubscribe':
        '<https://mail.example.test/unsubscribe/abc>, <mailto:unsub@example.test>',
      'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
    },
  });
  t.close();
  return rx.arrival((m) => m.rcptTos.includes('reader@dest.test'), 'the newsletter');
}

test('a bulk message signs List-Unsubscribe and List-Unsubscribe-Post, and dkimpy and OpenDKIM pass it', async () => {
  const fields = signedFields(bulk.data);
  assert.equal(fields.length, 2, 'an Ed25519 and an RSA signature');
  for (const h of fields) {
    assert.ok(h.includes('list-unsubscribe'), `h= has List-Unsubscribe: ${h.join(':')}`);
    assert.ok(h.includes('list-unsubscribe-post'), `h= has List-Unsubscribe-Post: ${h.join(':')}`);
  }
  const v = await dkimpy(dns, 'dkimverify-all', bulk.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /d=example\.test a=rsa-sha256 ok/);
  assert.match(v.out, /d=example\.test a=ed25519-sha256 ok/);
  const o = await opendkim(dns, bulk.data);
  assert.equal(o.code, 0, `opendkim-testmsg: ${o.out}`);
});

for (const field of [
  'Reply-To: <replies@attacker.test>',
  'Cc: <victim@dest.test>',
  'Sender: <bulk@attacker.test>',
  'Content-Type: text/html; charset=utf-8',
  'List-Unsubscribe: <https://attacker.test/u>',
]) {
  test(`a "${field.split(':')[0]}" added to the signed message makes both signatures fail`, async () => {
    const replayed = withField(bulk.data, field);
    const v = await dkimpy(dns, 'dkimverify-all', replayed);
    assert.notEqual(v.code, 0, v.out);
    assert.doesNotMatch(v.out, / ok$/m, `no signature survives: ${v.out}`);
    const o = await opendkim(dns, replayed);
    assert.notEqual(o.code, 0, 'OpenDKIM fails it too');
  });
}

test('a DSN carries a Received field and a signed Auto-Submitted, and passes SPF at the HELO name', async () => {
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submission,
    auth: { user: s.user, pass: s.password },
    tls: { rejectUnauthorized: false },
  });
  await t.sendMail({ from: s.user, to: 'reject-me@dest.test', subject: 'bounces', text: 'x\r\n' });
  t.close();
  const dsn = await rx.arrival(
    (m) =>
      m.mailFrom === '' &&
      m.data.toString().includes('Final-Recipient: rfc822; reject-me@dest.test'),
    'the DSN',
  );
  assert.equal(dsn.helo, 'mail.example.test');
  const text = header(dsn.data);
  assert.match(text, /^Received: by mail\.example\.test \(posta\) id \S+;\r\n\t.+$/m);
  assert.match(text, /^Auto-Submitted: auto-replied$/m);
  for (const h of signedFields(dsn.data)) assert.ok(h.includes('auto-submitted'), h.join(':'));
  const v = await dkimpy(dns, 'dkimverify-all', dsn.data);
  assert.equal(v.code, 0, v.out);

  // The receiver checks the HELO name, the sender being <>: with the records
  // `posta dns` prints for the address posta sent from, pyspf says pass ...
  const ip = dsn.peer.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  await publish([ip]);
  const spf = await pyspf(ip, '', dsn.helo);
  assert.equal(spf.code, 0, `pyspf: ${spf.out}`);
  assert.match(spf.out, /^pass /);
  // ... and fail from any other address.
  const other = await pyspf('127.1.2.3', '', dsn.helo);
  assert.match(other.out, /^fail /, other.out);
});
