/**
 * Receiving and forwarding end to end. origin.test publishes `SPF -all`
 * (without posta's address), `DMARC p=reject` and a DKIM key; a message from
 * it, signed by dkimpy, arrives on port 25 for anything@example.test and the
 * catch-all forwards it to me@gmail.test. At the receiving MX (aiosmtpd) the
 * envelope sender is an SRS address of example.test, the original DKIM
 * signature still verifies, dkimpy's arcverify gives cv=pass, and
 * Authentication-Results says what posta saw. Bounces to the SRS address go
 * back to the original sender; forged ones are refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta, tempDir } from '../helpers/posta.ts';
import { dkimpy, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { RawSmtp } from '../helpers/smtp.ts';

let dns: DnsServer;
let rx: Receiver;
let s: TestServer;
let originKey: string;

before(async () => {
  const mx = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`] });
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  originKey = join(await tempDir('posta-origin-'), 'origin.key');
  await writeFile(originKey, privateKey.export({ type: 'pkcs1', format: 'pem' }));
  const p = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const zone = [
    SOA('test'),
    'gmail.test. IN MX 10 mx.gmail.test.',
    `mx.gmail.test. IN A ${mx}`,
    'origin.test. IN MX 10 mx.origin.test.',
    `mx.origin.test. IN A ${mx}`,
    'origin.test. IN TXT "v=spf1 ip4:192.0.2.1 -all"',
    '_dmarc.origin.test. IN TXT "v=DMARC1; p=reject"',
    `sel._domainkey.origin.test. IN TXT ${quoted(`v=DKIM1; k=rsa; p=${p}`)}`,
  ].join('\n');
  dns = await startDns(`${zone}\n`);
  s = await startServer({
    dns: dns.endpoint,
    extraToml: '[delivery]\nfirst_retry = 1\nmax_retry = 2',
  });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  await dns.update(`${zone}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  dns?.stop();
});

/** A TXT value as quoted strings of at most 255 characters (RFC 1035 §3.3). */
function quoted(value: string): string {
  return (value.match(/.{1,255}/g) ?? []).map((c) => `"${c}"`).join(' ');
}

/** A message from alice@origin.test, signed by dkimpy with origin.test's key. */
function signedMessage(opts: { from?: string; to: string; subject: string; extra?: string }) {
  const text =
    (opts.extra ?? '') +
    `From: Alice <${opts.from ?? 'alice@origin.test'}>\r\nTo: ${opts.to}\r\n` +
    `Subject: ${opts.subject}\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n` +
    `Message-ID: <${opts.subject.replace(/\W/g, '')}@origin.test>\r\n\r\nHello from origin.\r\n`;
  return python(
    'import dkim,sys; m=sys.stdin.buffer.read(); k=open(sys.argv[1],"rb").read();' +
      ' sys.stdout.buffer.write(dkim.sign(m, b"sel", b"origin.test", k,' +
      ' include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + m)',
    [originKey],
    Buffer.from(text),
  ).then((r) => r.stdout);
}

function python(code: string, args: string[], input: Buffer) {
  return new Promise<{ code: number; stdout: Buffer; stderr: string }>((resolve) => {
    const child = execFile(
      '/usr/bin/python3',
      ['-c', code, ...args],
      { encoding: 'buffer' },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, stdout, stderr: stderr.toString() }),
    );
    child.stdin?.end(input);
  });
}

/** One SMTP transaction on port 25; the replies to RCPT and to the end of DATA. */
/** `posta alias add PATTERN TARGET`, then wait until the server has read it. */
async function addAlias(pattern: string, target: string): Promise<void> {
  await s.reload(async () => {
    const added = await posta(['alias', 'add', pattern, target, '--dir', s.dir]);
    assert.equal(added.code, 0, added.stderr);
  });
}

async function inbound(from: string, to: string, data: Buffer) {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO mx.origin.test')).code, 250);
    assert.equal((await c.cmd(`MAIL FROM:<${from}>`)).code, 250);
    const rcpt = await c.cmd(`RCPT TO:<${to}>`);
    if (rcpt.code !== 250) return { rcpt, data: null };
    assert.equal((await c.cmd('DATA')).code, 354);
    c.write(data);
    return { rcpt, data: await c.cmd('.') };
  } finally {
    c.close();
  }
}

test('without an alias or catch-all, a local recipient is refused at RCPT with 550 5.1.1', async () => {
  const r = await inbound('alice@origin.test', 'nobody@example.test', Buffer.alloc(0));
  assert.equal(r.rcpt.code, 550);
  assert.match(r.rcpt.raw, /^550 5\.1\.1 /);
});

test('bare <postmaster> (RFC 5321 §4.5.1) is postmaster@example.test: refused while that goes nowhere', async () => {
  const r = await inbound('alice@origin.test', 'postmaster', Buffer.alloc(0));
  assert.equal(r.rcpt.code, 550, r.rcpt.raw);
  assert.match(r.rcpt.raw, /^550 5\.1\.1 <postmaster@example\.test>: no such recipient here/);
});

test('bare <PostMaster> is accepted and forwarded where postmaster@example.test is aliased', async () => {
  await addAlias('postmaster@example.test', 'pm@gmail.test');
  const message = await signedMessage({ to: 'postmaster', subject: 'to the postmaster' });
  const r = await inbound('alice@origin.test', 'PostMaster', message);
  assert.equal(r.rcpt.code, 250, r.rcpt.raw);
  assert.equal(r.data?.code, 250, r.data?.raw);
  const m = await rx.arrival((x) => x.rcptTos.includes('pm@gmail.test'), 'postmaster forward');
  assert.match(m.data.toString(), /Subject: to the postmaster/);
});

test('the catch-all forwards with SRS, the original DKIM intact and an ARC seal that verifies', async () => {
  await addAlias('*@example.test', 'me@gmail.test');
  const message = await signedMessage({ to: 'anything@example.test', subject: 'forward me' });
  const r = await inbound('alice@origin.test', 'anything@example.test', message);
  assert.equal(r.data?.code, 250, r.data?.raw);

  const m = await rx.arrival(
    (x) => x.rcptTos.includes('me@gmail.test'),
    'forwarded to me@gmail.test',
  );
  assert.match(m.mailFrom, /^SRS0=[a-z2-7]{8}=[a-z2-7]{2}=origin\.test=alice@example\.test$/);
  const text = m.data.toString();
  assert.match(text, /^Authentication-Results: mail\.example\.test;/m);
  assert.match(text, /spf=fail/);
  assert.match(text, /dkim=pass header\.i=@origin\.test/);
  assert.match(text, /dmarc=pass/);
  assert.match(text, /^ARC-Seal: i=1; a=rsa-sha256;.*cv=none/m);

  const dkim = await dkimpy(dns, 'dkimverify', m.data);
  assert.equal(dkim.out.trim(), 'signature ok', dkim.out);
  const arc = await dkimpy(dns, 'arcverify', m.data);
  assert.match(arc.out, /arc verification: cv=b?'?pass'? success/, arc.out);
});

test('a DMARC p=reject failure is refused at the end of DATA', async () => {
  const forged = Buffer.from(
    'From: Alice <alice@origin.test>\r\nTo: x@example.test\r\nSubject: forged\r\n\r\nunsigned\r\n',
  );
  const r = await inbound('alice@origin.test', 'x@example.test', forged);
  assert.equal(r.data?.code, 550);
  assert.match(r.data?.raw ?? '', /^550 5\.7\.1 Rejected by the DMARC policy of origin\.test/);
});

test('mail From one of our own domains must pass DMARC on port 25, whatever p= says', async () => {
  const forged = Buffer.from(
    'From: The CEO <ceo@example.test>\r\nTo: x@example.test\r\nSubject: wire money\r\n\r\nnow\r\n',
  );
  const r = await inbound('ceo@example.test', 'x@example.test', forged);
  assert.equal(r.data?.code, 550);
  assert.match(r.data?.raw ?? '', /^550 5\.7\.1 Mail From example\.test must pass DMARC here/);
});

test('a bounce to the SRS address reaches the original sender; a tampered one is refused', async () => {
  const forwarded = (await rx.messages()).find((x) => x.rcptTos.includes('me@gmail.test'));
  assert.ok(forwarded, 'the forwarding test ran first');
  const srs = forwarded.mailFrom;
  const dsn = Buffer.from(
    'From: MAILER-DAEMON@gmail.test\r\nTo: ' +
      srs +
      '\r\nSubject: Undelivered Mail Returned to Sender\r\n\r\nno such mailbox\r\n',
  );
  const r = await inbound('', srs, dsn);
  assert.equal(r.rcpt.code, 250, r.rcpt.raw);
  assert.equal(r.data?.code, 250, r.data?.raw);
  const back = await rx.arrival(
    (x) => x.rcptTos.includes('alice@origin.test') && x.mailFrom === '',
    'bounce to alice@origin.test',
  );
  assert.match(back.data.toString(), /no such mailbox/);

  const tampered = srs.replace('=alice@', '=mallory@');
  const bad = await inbound('', tampered, dsn);
  assert.equal(bad.rcpt.code, 550);
  assert.match(bad.rcpt.raw, /^550 5\.7\.1 .*the SRS hash is wrong/);
});

test('a bounce to an SRS address longer than 64 bytes is still taken back', async () => {
  const sender = `bounces+${'a1b2c3d4'.repeat(6)}@origin.test`;
  const message = await signedMessage({
    from: sender,
    to: 'long@example.test',
    subject: 'long sender',
  });
  const r = await inbound(sender, 'long@example.test', message);
  assert.equal(r.data?.code, 250, r.data?.raw);
  const fwd = await rx.arrival(
    (x) => x.data.toString().includes('Subject: long sender'),
    'long sender',
  );
  assert.ok(fwd.mailFrom.length - fwd.mailFrom.indexOf('@') > 0 && fwd.mailFrom.indexOf('@') > 64);
  const dsn = Buffer.from(`From: MAILER-DAEMON@gmail.test\r\nSubject: bounce\r\n\r\nlong one\r\n`);
  const back = await inbound('', fwd.mailFrom, dsn);
  assert.equal(back.rcpt.code, 250, back.rcpt.raw);
  await rx.arrival(
    (x) => x.rcptTos.includes(sender) && x.mailFrom === '',
    'the bounce to the long sender',
  );
});

test('a forwarding loop ends with one DSN to the original sender', async () => {
  const hops = Array.from(
    { length: 50 },
    (_, i) =>
      `Received: from hop${i}.loop.test by hop${i + 1}.loop.test; Fri, 27 Nov 2026 12:00:00 +0000\r\n`,
  ).join('');
  const message = await signedMessage({ to: 'loop@example.test', subject: 'looping', extra: hops });
  const r = await inbound('bob@origin.test', 'loop@example.test', message);
  assert.equal(r.data?.code, 250, r.data?.raw);
  const dsn = await rx.arrival(
    (x) => x.rcptTos.includes('bob@origin.test') && x.mailFrom === '',
    'loop DSN to bob@origin.test',
  );
  assert.match(dsn.data.toString(), /^Status: 5\.4\.6/m);
  await sleep(2000);
  const all = (await rx.messages()).filter((x) => x.rcptTos.includes('bob@origin.test'));
  assert.equal(all.length, 1, 'one DSN');
  const forwarded = (await rx.messages()).filter(
    (x) => x.mailFrom !== '' && x.data.toString().includes('Subject: looping'),
  );
  assert.deepEqual(forwarded, [], 'the looping message itself is not forwarded');
});

test('Gmail "send mail as": STARTTLS, AUTH LOGIN, From an alias of the account', async () => {
  await addAlias('sales@example.test', s.user);
  const run = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      'swaks',
      [
        '--server',
        `${s.host}:${s.ports.submission}`,
        '--tls',
        '--auth',
        'LOGIN',
        '--auth-user',
        s.user,
        '--auth-password',
        s.password,
        '--ehlo',
        'mail-sor-f41.google.com',
        '--from',
        'sales@example.test',
        '--h-From',
        '"Sales" <sales@example.test>',
        '--to',
        'customer@gmail.test',
        '--h-Subject',
        'sent as an alias',
      ],
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
    );
  });
  assert.equal(run.code, 0, run.out);
  const m = await rx.arrival((x) => x.rcptTos.includes('customer@gmail.test'), 'sent as alias');
  assert.equal(m.mailFrom, 'sales@example.test');
  assert.match(m.data.toString(), /^DKIM-Signature: .*d=example\.test/m);
});

test('an alias loop is refused on port 25 and ends with one DSN from submission', async () => {
  for (const [a, b] of [
    ['loopa@example.test', 'loopb@example.test'],
    ['loopb@example.test', 'loopa@example.test'],
  ] as const) {
    await addAlias(a, b);
  }
  const r = await inbound('alice@origin.test', 'loopa@example.test', Buffer.alloc(0));
  assert.equal(r.rcpt.code, 550);
  assert.match(
    r.rcpt.raw,
    /^550 5\.4\.6 <loopa@example\.test>: its aliases lead only to each other/,
  );

  const run = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(
      'swaks',
      [
        ...['--server', `${s.host}:${s.ports.submission}`, '--tls'],
        ...['--auth-user', s.user, '--auth-password', s.password],
        ...['--from', s.user, '--to', 'loopa@example.test', '--h-Subject', 'into the loop'],
      ],
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
    );
  });
  assert.equal(run.code, 0, run.out);
  // The account's own address is forwarded by the catch-all to me@gmail.test.
  const dsn = await rx.arrival(
    (x) =>
      x.mailFrom === '' &&
      x.data.toString().includes('Final-Recipient: rfc822; loopa@example.test'),
    'DSN for the alias loop',
  );
  assert.match(dsn.data.toString(), /^Status: 5\.4\.6/m);
  await sleep(1500);
  const dsns = (await rx.messages()).filter((x) =>
    x.data.toString().includes('Final-Recipient: rfc822; loopa@example.test'),
  );
  assert.equal(dsns.length, 1, 'one DSN');
});

test('[inbound] checks = false: the DMARC failure is forwarded as it came, with SRS, unsealed', async () => {
  const off = await startServer({
    dns: dns.endpoint,
    extraToml: '[inbound]\nchecks = false',
  });
  try {
    const added = await posta([
      'alias',
      'add',
      'unchecked@example.test',
      'plain@gmail.test',
      '--dir',
      off.dir,
    ]);
    assert.equal(added.code, 0, added.stderr);
    await off.logged(0, 'config folder reloaded');
    const forged = Buffer.from(
      'From: Alice <alice@origin.test>\r\nTo: unchecked@example.test\r\nSubject: unchecked\r\n\r\nunsigned\r\n',
    );
    const c = await RawSmtp.connect(off.host, off.ports.smtp);
    try {
      assert.equal((await c.reply()).code, 220);
      assert.equal((await c.cmd('EHLO mx.origin.test')).code, 250);
      assert.equal((await c.cmd('MAIL FROM:<alice@origin.test>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<unchecked@example.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      c.write(forged);
      const r = await c.cmd('.');
      assert.equal(r.code, 250, r.raw);
    } finally {
      c.close();
    }
    const m = await rx.arrival((x) => x.rcptTos.includes('plain@gmail.test'), 'unchecked forward');
    assert.match(m.mailFrom, /^SRS0=.*=origin\.test=alice@example\.test$/);
    const text = m.data.toString();
    assert.doesNotMatch(text, /^(Authentication-Results|ARC-Seal|ARC-Message-Signature):/im);
    assert.match(text, /Subject: unchecked\r\n/);
  } finally {
    await off.stop();
  }
});
