/**
 * Delivery end to end: a real `posta serve` looks up MX/A/AAAA records on a
 * DNS server on loopback and delivers to an independent receiving MX
 * (aiosmtpd) on 127.x.y.z:25 and [::1]:25, retries, bounces and expires.
 * The received bytes are checked by dkimpy; DSNs are read as a person and a
 * machine would read them.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta } from '../helpers/posta.ts';
import { dkimpy, opendkim, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type ReceivedMessage, type Receiver } from '../helpers/receiver.ts';
import { submit } from '../helpers/smtp.ts';

let dns: DnsServer;
let dkimDns: DnsServer;
let rx: Receiver;
let broken: Receiver;
let s: TestServer;

before(async () => {
  const mx = randomLoopback();
  const dead = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`, '[::1]:25'] });
  const brokenMx = randomLoopback();
  broken = await startReceiver({ listen: [`${brokenMx}:25`], brokenTls: true });
  dns = await startDns(
    [
      SOA('test'),
      `dest.test. IN MX 10 mx.dest.test.`,
      `mx.dest.test. IN A ${mx}`,
      // MX fallback: the preferred host does not answer.
      `fallback.test. IN MX 10 dead.fallback.test.`,
      `fallback.test. IN MX 20 mx.fallback.test.`,
      `dead.fallback.test. IN A ${dead}`,
      `mx.fallback.test. IN A ${mx}`,
      // Implicit MX: no MX record, the domain's own address.
      `implicit.test. IN A ${mx}`,
      `v6.test. IN MX 10 mx.v6.test.`,
      `mx.v6.test. IN AAAA ::1`,
      `reuse.test. IN MX 10 mx.reuse.test.`,
      `mx.reuse.test. IN A ${mx}`,
      // Domains of their own, so that no other test's delivery holds their slot.
      `bounce1.test. IN MX 10 mx.dest.test.`,
      `bounce2.test. IN MX 10 mx.dest.test.`,
      `slow.test. IN MX 10 mx.slow.test.`,
      `mx.slow.test. IN A ${mx}`,
      `nullmx.test. IN MX 0 .`,
      // Offers STARTTLS, but every handshake fails.
      `brokentls.test. IN MX 10 mx.brokentls.test.`,
      `mx.brokentls.test. IN A ${brokenMx}`,
      '; servfail broken.test.',
      '',
    ].join('\n'),
  );
  s = await startServer({
    dns: dns.endpoint,
    extraToml: [
      '[delivery]',
      'first_retry = 1',
      'max_retry = 2',
      'lifetime = 8',
      'delay_warning = 2',
      'connections_per_domain = 1',
      '[delivery.destinations."slow.test"]',
      'messages_per_minute = 1',
    ].join('\n'),
  });
  // Bounces to the account go to a mailbox on the receiver.
  const server = s;
  await server.reload(async () => {
    const added = await posta([
      'alias',
      'add',
      server.user,
      'owner@dest.test',
      '--dir',
      server.dir,
    ]);
    assert.equal(added.code, 0, added.stderr);
  });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  await broken?.stop();
  dns?.stop();
  dkimDns?.stop();
});

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);
const dsnFor =
  (address: string, action = 'failed') =>
  (m: ReceivedMessage) =>
    m.mailFrom === '' &&
    m.data.toString().includes(`Final-Recipient: rfc822; ${address}\r\nAction: ${action}`);

async function show(id: string): Promise<{
  queued: unknown;
  attempts: { recipient: string; outcome: string; reply: string; tls: string | null; mx: string }[];
}> {
  const r = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Awaited<ReturnType<typeof show>>;
}

test('a submitted message reaches the MX over TLS, with both DKIM signatures valid there (dkimpy and OpenDKIM)', async () => {
  const id = await submit(s, 'bob@dest.test', 'over tls');
  const m = await rx.arrival(to('bob@dest.test'), 'for bob@dest.test');
  assert.equal(m.tls, true, 'STARTTLS was used');
  assert.match(m.tlsVersion ?? '', /^TLSv1\.[23]$/);
  assert.equal(m.helo, 'mail.example.test', 'EHLO carries the hostname');
  assert.equal(m.mailFrom, s.user);
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /0 d=example\.test a=ed25519-sha256 ok/);
  assert.match(v.out, /1 d=example\.test a=rsa-sha256 ok/);
  const o = await opendkim(dkimDns, m.data);
  assert.equal(o.code, 0, `opendkim-testmsg: ${o.out}`);
  assert.equal(o.out, '', 'opendkim-testmsg prints only on failure');
  // and it is really checking: one changed body byte fails it
  const tampered = Buffer.from(m.data.toString('latin1').replace(/Hello\./, 'Hellp.'), 'latin1');
  assert.notDeepEqual(tampered, m.data);
  assert.notEqual((await opendkim(dkimDns, tampered)).code, 0, 'a changed body fails OpenDKIM');
  const log = await show(id);
  assert.equal(log.queued, null, 'the message has left the queue');
  const a = log.attempts.find((x) => x.recipient === 'bob@dest.test');
  assert.equal(a?.outcome, 'delivered');
  assert.equal(a?.mx, 'mx.dest.test');
  assert.match(a?.tls ?? '', /^TLSv1\.[23]$/);
  assert.match(a?.reply ?? '', /^250 /);
});

test('a 2.9 MB message (a file while it arrives, parts in the queue) arrives whole, its DKIM signatures valid', async () => {
  const text = Array.from({ length: 40_000 }, (_, i) => `line ${i} ${'z'.repeat(60)}`).join('\r\n');
  await submit(s, 'big@dest.test', 'large', `${text}\r\n`);
  const m = await rx.arrival(to('big@dest.test'), 'for big@dest.test');
  assert.ok(m.data.length > 2_800_000, `${m.data.length} bytes arrived`);
  assert.ok(m.data.toString().includes(`line 39999 ${'z'.repeat(60)}`), 'the end arrived');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /0 d=example\.test a=ed25519-sha256 ok/);
  assert.match(v.out, /1 d=example\.test a=rsa-sha256 ok/);
});

test('the next MX is used when the preferred one does not answer', async () => {
  await submit(s, 'carol@fallback.test', 'fallback');
  await rx.arrival(to('carol@fallback.test'), 'via the second MX');
});

test('a domain without MX gets mail at its own address (implicit MX)', async () => {
  await submit(s, 'dave@implicit.test', 'implicit');
  await rx.arrival(to('dave@implicit.test'), 'via implicit MX');
});

test('an MX reachable only over IPv6 gets the mail on [::1]:25', async () => {
  await submit(s, 'erin@v6.test', 'ipv6');
  const m = await rx.arrival(to('erin@v6.test'), 'over IPv6');
  assert.equal(m.listen, '[::1]:25');
  assert.equal(m.peer, '::1');
});

test('a 451 at RCPT is retried and then delivered', async () => {
  const id = await submit(s, 'tempfail1-frank@dest.test', 'retry');
  await rx.arrival(to('tempfail1-frank@dest.test'), 'after the retry');
  const outcomes = (await show(id)).attempts.map((a) => a.outcome);
  assert.deepEqual(outcomes, ['transient', 'delivered']);
});

test('a 550 at RCPT bounces: one DSN to the sender, signed, quoting the reply', async () => {
  const id = await submit(s, 'reject-gina@dest.test', 'will bounce');
  const dsn = await rx.arrival(dsnFor('reject-gina@dest.test'), 'DSN for reject-gina');
  const text = dsn.data.toString();
  assert.deepEqual(dsn.rcptTos, ['owner@dest.test']);
  assert.match(text, /^Content-Type: multipart\/report; report-type=delivery-status;/m);
  assert.match(text, /^Auto-Submitted: auto-replied/m);
  assert.match(text, /^From: Mail Delivery System <MAILER-DAEMON@example\.test>/m);
  assert.match(text, /^Subject: Undelivered Mail Returned to Sender: will bounce/m);
  assert.match(text, /^Reporting-MTA: dns; mail\.example\.test/m);
  assert.match(text, /^Action: failed/m);
  assert.match(text, /^Status: 5\.1\.1/m);
  assert.match(text, /^Remote-MTA: dns; mx\.dest\.test/m);
  assert.match(
    text,
    /^Diagnostic-Code: smtp; 550 5\.1\.1 <reject-gina@dest\.test>: no such user here/m,
  );
  assert.match(text, /mx\.dest\.test said: 550 5\.1\.1/);
  assert.match(text, /^Content-Type: text\/rfc822-headers/m);
  assert.match(text, new RegExp(`^X-Posta-Queue-ID: ${id}`, 'm'));
  const v = await dkimpy(dkimDns, 'dkimverify-all', dsn.data);
  assert.equal(v.code, 0, v.out);
  const o = await opendkim(dkimDns, dsn.data);
  assert.equal(o.code, 0, `opendkim-testmsg: ${o.out}`);
  assert.equal(
    (await rx.messages()).filter(dsnFor('reject-gina@dest.test')).length,
    1,
    'exactly one DSN',
  );
  assert.equal((await show(id)).attempts[0]?.outcome, 'permanent');
});

test('recipients failing at two domains get one DSN that names both', async () => {
  const id = await submit(
    s,
    'reject-ivy@bounce1.test, reject-jo@bounce2.test, kim@reuse.test',
    'two domains bounce',
  );
  const dsn = await rx.arrival(dsnFor('reject-ivy@bounce1.test'), 'DSN for reject-ivy');
  assert.match(
    dsn.data.toString(),
    /^Final-Recipient: rfc822; reject-jo@bounce2\.test\r\nAction: failed/m,
  );
  assert.doesNotMatch(dsn.data.toString(), /Final-Recipient: rfc822; kim@/);
  await rx.arrival(to('kim@reuse.test'), 'the recipient that took it');
  for (let i = 0; i < 600 && (await show(id)).queued !== null; i++) await sleep(100);
  const notices = s.logs.filter((l) => l.includes(`"qid":"${id}"`) && l.includes('dsn queued'));
  assert.equal(notices.length, 1, notices.join('\n'));
});

test('a null MX (RFC 7505) fails at once with 5.1.10', async () => {
  await submit(s, 'hank@nullmx.test', 'null mx');
  const dsn = await rx.arrival(dsnFor('hank@nullmx.test'), 'DSN for the null MX');
  assert.match(dsn.data.toString(), /^Status: 5\.1\.10/m);
});

test('messages to one domain share one connection', async () => {
  const before = (await rx.connections()).length;
  const n = 5;
  await Promise.all(
    Array.from({ length: n }, (_, i) => submit(s, `r${i}@reuse.test`, `reuse ${i}`)),
  );
  const got = await Promise.all(
    Array.from({ length: n }, (_, i) => rx.arrival(to(`r${i}@reuse.test`), `r${i}@reuse.test`)),
  );
  const connections = new Set(got.map((m) => m.connection));
  assert.equal(connections.size, 1, `one connection carried all ${n} messages`);
  assert.ok((await rx.connections()).length - before < n);
});

test('[delivery.destinations] holds mail to its domain at its own limit, and only there', async () => {
  await submit(s, 'one@slow.test', 'slow 1');
  await rx.arrival(to('one@slow.test'), 'the first message for slow.test');
  const held = await submit(s, 'two@slow.test', 'slow 2');
  // Sent after the held one, to another domain: it goes at once.
  await submit(s, 'other@dest.test', 'not held');
  await rx.arrival(to('other@dest.test'), 'mail for another domain meanwhile');
  assert.ok(!(await rx.messages()).some(to('two@slow.test')), 'one a minute to slow.test');
  const q = await show(held);
  assert.notEqual(q.queued, null, 'the second message waits in the queue');
  assert.equal(q.attempts.length, 0, 'untried: the limit, not a failure, holds it');
  const deleted = await posta(['queue', 'delete', held, '--dir', s.dir]);
  assert.equal(deleted.code, 0, deleted.stderr);
});

test('a recipient that keeps getting 451 gets one delay warning, then expires with a 4.4.7 DSN', async () => {
  const id = await submit(s, 'always-tempfail-ivan@dest.test', 'expires');
  const warning = await rx.arrival(
    dsnFor('always-tempfail-ivan@dest.test', 'delayed'),
    'delay warning',
    30_000,
  );
  assert.match(warning.data.toString(), /^Subject: Delayed Mail \(still being retried\): expires/m);
  const dsn = await rx.arrival(dsnFor('always-tempfail-ivan@dest.test'), 'expiry DSN', 30_000);
  const text = dsn.data.toString();
  assert.match(text, /^Status: 4\.4\.7/m);
  assert.match(text, /^Action: failed/m);
  assert.match(text, /451 4\.3\.0 try again later/);
  const outcomes = (await show(id)).attempts.map((a) => a.outcome);
  assert.ok(outcomes.length >= 3, `retried: ${outcomes.join(', ')}`);
  assert.equal(outcomes.at(-1), 'expired');
  const warnings = (await rx.messages()).filter(
    dsnFor('always-tempfail-ivan@dest.test', 'delayed'),
  );
  assert.equal(warnings.length, 1, 'one delay warning only');
});

test('a DNS failure (SERVFAIL) defers instead of bouncing', async () => {
  const id = await submit(s, 'jane@broken.test', 'servfail');
  await sleep(1500);
  const log = await show(id);
  assert.equal(log.attempts[0]?.outcome, 'transient');
  assert.match(
    log.attempts[0]?.reply ?? '',
    /^451 4\.4\.3 DNS lookup of MX for broken\.test failed/,
  );
});

test('a server whose TLS handshake fails gets the mail without STARTTLS', async () => {
  const id = await submit(s, 'kai@brokentls.test', 'no tls');
  const [m] = await broken.waitFor(1);
  assert.equal(m?.tls, false);
  assert.deepEqual(m?.rcptTos, ['kai@brokentls.test']);
  const a = (await show(id)).attempts.find((x) => x.recipient === 'kai@brokentls.test');
  assert.equal(a?.outcome, 'delivered');
  assert.equal(a?.tls, null, 'recorded as plaintext');
  assert.ok(s.logs.some((l) => l.includes('TLS handshake failed; retrying without STARTTLS')));
});
