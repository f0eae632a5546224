/**
 * `posta send` and `posta sendmail` end to end: a real `posta serve` with a
 * DNS server on loopback whose MX for dest.test is an independent receiving
 * MX (aiosmtpd). `posta send` submits over 587/465 with nodemailer and, with
 * --wait, follows the message to the MX; `posta sendmail` writes into the
 * queue as postdrop does. What arrives is checked by dkimpy.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { posta, shareConfig } from '../helpers/posta.ts';
import { dkimpy, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type ReceivedMessage, type Receiver } from '../helpers/receiver.ts';

let dns: DnsServer;
let dkimDns: DnsServer;
let destination: Awaited<ReturnType<typeof startMxFor>>;
let rx: Receiver;
let s: TestServer;
let mx: string;

before(async () => {
  destination = await startMxFor('dest.test');
  ({ rx, dns, address: mx } = destination);
  s = await startServer({ dns: dns.endpoint });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await destination?.stop();
  dkimDns?.stop();
});

const auth = () => ['--user', s.user, '--password', s.password, '--dir', s.dir];

const headerOf = (m: ReceivedMessage) => {
  const text = m.data.toString();
  return text.slice(0, text.indexOf('\r\n\r\n') + 2);
};

test('posta send --wait: queued, followed to the MX, delivered over TLS', async () => {
  const r = await posta(['send', '--to', 'someone@dest.test', '--wait', '--insecure', ...auth()]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const id = /^queued as (\S+)$/m.exec(r.stdout)?.[1];
  assert.ok(id, r.stdout);
  assert.match(
    r.stdout,
    new RegExp(
      `^Server: +${s.host.replaceAll('.', '\\.')}:${s.ports.submission} \\(STARTTLS\\)`,
      'm',
    ),
  );
  assert.match(r.stdout, /^TLS: +TLSv1\.[23] \S+, certificate not verified \(--insecure/m);
  assert.match(r.stdout, /^AUTH: +i@example\.test ok$/m);
  assert.match(r.stdout, new RegExp(`^Reply: +250 2\\.0\\.0 Ok: queued as ${id}$`, 'm'));
  assert.match(
    r.stdout,
    new RegExp(
      `^<someone@dest\\.test> delivered via mx\\.dest\\.test \\[${mx.replaceAll('.', '\\.')}\\], TLSv1\\.[23] \\(certificate not verified\\)\\n {4}250 `,
      'm',
    ),
  );
  assert.equal(r.stderr, '');
  const m = await rx.arrival((x) => x.rcptTos.includes('someone@dest.test'), 'for someone');
  assert.equal(m.mailFrom, s.user);
  assert.match(headerOf(m), /^Subject: posta test message /m);
  assert.match(headerOf(m), /^From: i@example\.test/m);
  assert.match(m.data.toString(), /sent by `posta send` on /);
});

test('posta send over implicit TLS verifies the certificate with NODE_EXTRA_CA_CERTS; $user $pass $to', async () => {
  const r = await posta(['send', '--tls', '--subject', 'verified', '--dir', s.dir], {
    env: { NODE_EXTRA_CA_CERTS: s.certFile, user: s.user, pass: s.password, to: 'v@dest.test' },
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`:${s.ports.submissions} \\(implicit TLS\\)`));
  assert.match(r.stdout, /certificate verified for mail\.example\.test/);
  await rx.arrival((x) => x.rcptTos.includes('v@dest.test'), 'for v');
});

test('posta send refuses a certificate that does not verify, and names --insecure', async () => {
  const r = await posta(['send', '--to', 'n@dest.test', ...auth()]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(
    r.stderr,
    /^posta: 127\.[\d.]+:\d+'s certificate is not trusted \(self-signed certificate\); trust the server's CA with NODE_EXTRA_CA_CERTS=FILE, or add --insecure to send without verifying it\.\n$/,
  );
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test("posta send against posta's temporary certificate (ACME has none yet) says so, and what to do", async () => {
  // The ACME directory is a closed port on loopback: no certificate ever arrives.
  const a = await startServer({
    certificate: [
      '[acme]',
      'email = "postmaster@example.test"',
      'directory = "https://127.0.0.1:9/directory"',
      'challenge = "dns-01"',
      'dns_hook = "/bin/false"',
    ].join('\n'),
  });
  try {
    const auth = ['--user', a.user, '--password', a.password, '--dir', a.dir];
    for (const tls of [[], ['--tls']]) {
      const r = await posta(['send', '--to', 'n@dest.test', ...tls, ...auth]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(
        r.stderr,
        /^posta: \S+'s certificate is not trusted \(self-signed certificate\): posta serves a temporary self-signed certificate until ACME gets one \(`posta cert status` says how that goes\); wait for the certificate, trust the server's CA with NODE_EXTRA_CA_CERTS=FILE, or add --insecure to send without verifying it\.\n$/,
      );
      const insecure = await posta(['send', '--to', 'n@dest.test', '--insecure', ...tls, ...auth]);
      assert.equal(insecure.code, 0, insecure.stderr);
    }
  } finally {
    // SIGKILL: a SIGTERM waits for the ACME order in flight (over a minute of retries).
    await a.stop('SIGKILL');
  }
});

test('posta send --wait reports a bounce with the remote reply and exits 1', async () => {
  const r = await posta(['send', '--to', 'reject-x@dest.test', '--wait', '--insecure', ...auth()]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^queued as \S+$/m);
  assert.match(r.stdout, /^<reject-x@dest\.test> bounced via mx\.dest\.test .*\n {4}550 5\.1\.1 /m);
  assert.match(
    r.stderr,
    /^posta: Not delivered: <reject-x@dest\.test> bounced: 550 5\.1\.1 .*posta queue show/,
  );
});

test('posta send --wait --timeout: a deferred delivery is reported when the time is up, exit 1', async () => {
  const r = await posta([
    ...['send', '--to', 'always-tempfail-w@dest.test', '--insecure', ...auth()],
    ...['--wait', '--timeout', '6'],
  ]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /^Waiting for delivery \(at most 6 s\)\.\.\.$/m);
  assert.match(r.stdout, /^<always-tempfail-w@dest\.test> deferred via mx\.dest\.test \[/m);
  assert.match(
    r.stderr,
    /^posta: Not delivered within 6 s: <always-tempfail-w@dest\.test> deferred: 451 4\.3\.0 .*`posta queue show \w+` has the details\.$/m,
  );
  const id = /queued as (\w+)/.exec(r.stdout)?.[1] ?? '';
  assert.equal((await posta(['queue', 'delete', id, '--dir', s.dir])).code, 0);
  const bad = await posta(['send', '--to', 'x@dest.test', '--wait', '--timeout', '2m', ...auth()]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--timeout "2m" is not a whole number of seconds, like 900\./);
});

test('posta sendmail -t: queued from stdin, delivered to To, Cc and Bcc, Bcc removed, signed', async () => {
  const message = [
    'From: Me <i@example.test>',
    'To: to1@dest.test',
    'Cc: "Cc" <cc1@dest.test>',
    'Bcc: bcc1@dest.test',
    'Subject: from sendmail',
    '',
    'Hello from cron.',
    '',
  ].join('\n');
  const r = await posta(['sendmail', '-t', '-i', '--dir', s.dir], { input: message });
  assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  const m = await rx.arrival((x) => x.rcptTos.includes('to1@dest.test'), 'from sendmail');
  assert.deepEqual([...m.rcptTos].sort(), ['bcc1@dest.test', 'cc1@dest.test', 'to1@dest.test']);
  assert.equal(m.mailFrom, 'i@example.test');
  const header = headerOf(m);
  assert.doesNotMatch(header, /^Bcc:/im);
  assert.match(header, /^DKIM-Signature: [^]*d=example\.test/m);
  assert.match(
    header,
    /^Received: by mail\.example\.test \(posta, from userid 0 root\)\r\n\tid \w+; /m,
  );
  assert.match(header, /^Message-ID: <.*@example\.test>/m);
  assert.match(header, /^Date: /m);
  assert.doesNotMatch(m.data.toString(), /\r(?!\n)|(?<!\r)\n/, 'CRLF line ends only');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
});

test('posta sendmail as another user (PHP as www-data, say): the running server queues and signs it', async () => {
  await shareConfig(s.dir);
  const keys = await readdir(join(s.dir, 'domains/example.test/dkim'));
  assert.ok(keys.length > 0);
  const message = 'From: web@example.test\nTo: php@dest.test\nSubject: from PHP\n\nHello.\n';
  const r = await posta(['sendmail', '-t', '-i', '--dir', s.dir], {
    input: message,
    asNobody: true,
  });
  assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  const m = await rx.arrival((x) => x.rcptTos.includes('php@dest.test'), 'from PHP');
  assert.equal(m.mailFrom, 'web@example.test');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.ok(
    s.logs.some((l) => l.includes('"via":"sendmail"') && l.includes('php@dest.test')),
    'the server logs the local submission',
  );
  // The same user with no server to hand it to cannot write the queue, and says why.
  await s.stop();
  try {
    const alone = await posta(['sendmail', 'php@dest.test', '--dir', s.dir], {
      input: 'Subject: nobody home\n\nx\n',
      asNobody: true,
    });
    assert.equal(alone.code, 1);
    assert.match(
      alone.stderr,
      /^posta: No posta server is running for .*, and this user cannot open its queue in .*; start posta serve, or run posta sendmail as the user it runs as\.\n$/,
    );
  } finally {
    await s.restart();
  }
});

test('posta sendmail with cron/mutt flags: -oi style flags accepted, a lone "." ends the message', async () => {
  const r = await posta(
    ['sendmail', '-odi', '-oem', '-bm', '-FCron Daemon', 'dot@dest.test', '--dir', s.dir],
    {
      input: 'Subject: dots\n\nbefore\n..stays\n.\nafter\n',
    },
  );
  assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  const m = await rx.arrival((x) => x.rcptTos.includes('dot@dest.test'), 'with a dot line');
  const text = m.data.toString();
  assert.match(text, /^From: "Cron Daemon" <postmaster@example\.test>\r\n/m);
  assert.match(text, /\r\n\r\nbefore\r\n\.\.stays\r\n$/);
});

test('posta sendmail takes a full name and recipients beyond Latin-1', async () => {
  const r = await posta(['sendmail', '-F', 'Łukasz Żółw', 'łukasz@dest.test', '--dir', s.dir], {
    input: 'Subject: names\n\nx\n',
  });
  assert.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  const m = await rx.arrival((x) => x.rcptTos.includes('łukasz@dest.test'), 'to łukasz');
  assert.match(m.data.toString(), /^From: .*<postmaster@example\.test>\r\n/m);
});

test('posta sendmail refuses a foreign sender, and no recipients is a usage error', async () => {
  const foreign = await posta(
    ['sendmail', '-f', 'me@elsewhere.test', 'x@dest.test', '--dir', s.dir],
    {
      input: 'Subject: no\n\nno\n',
    },
  );
  assert.equal(foreign.code, 1);
  assert.match(
    foreign.stderr,
    /^posta: The sender <me@elsewhere\.test> is not an address of this server's domains \(example\.test\)/,
  );
  assert.equal(foreign.stderr.trim().split('\n').length, 1);
  const none = await posta(['sendmail', '--dir', s.dir], { input: 'Subject: no\n\nno\n' });
  assert.equal(none.code, 2);
  const list = await posta(['queue', 'list', '--dir', s.dir]);
  assert.doesNotMatch(list.stdout, /elsewhere/);
});

test('posta send with a wrong password: exit 1 with the 535 reply', async () => {
  const r = await posta([
    'send',
    '--to',
    'w@dest.test',
    '--insecure',
    '--user',
    s.user,
    '--password',
    'wrong',
    '--dir',
    s.dir,
  ]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(
    r.stderr,
    /^posta: .* refused AUTH as i@example\.test: 535 5\.7\.8 .*; check --user and --password\.\n$/,
  );
});
