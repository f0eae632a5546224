/**
 * Submission (587 STARTTLS, 465 implicit TLS) with real clients: swaks,
 * Python smtplib, nodemailer; and what an authenticated account may not do.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp, plain, queued } from '../helpers/smtp.ts';

const PYTHON = '/usr/bin/python3';
const TO = 'friend@elsewhere.example';

let s: TestServer;

before(async () => {
  s = await startServer();
});

after(async () => {
  await s.stop();
});

function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      '/usr/bin/swaks',
      ['--timeout', '15', '--helo', 'client.test', ...args],
      { timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, out: stdout + stderr });
      },
    );
  });
}

/** A STARTTLS + AUTH PLAIN session on 587, EHLO done. */
async function authed(server: TestServer, user = server.user): Promise<RawSmtp> {
  const c = await RawSmtp.connect(server.host, server.ports.submission);
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  await c.upgrade();
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  const auth = await c.cmd(`AUTH PLAIN ${plain(user, server.password)}`);
  assert.equal(auth.code, 235, auth.raw);
  return c;
}

for (const method of ['PLAIN', 'LOGIN']) {
  test(`swaks: 587 STARTTLS + AUTH ${method} is queued`, async () => {
    const r = await swaks([
      '--server',
      `${s.host}:${s.ports.submission}`,
      '--tls',
      '--auth',
      method,
      '--auth-user',
      s.user,
      '--auth-password',
      s.password,
      '--from',
      s.user,
      '--to',
      TO,
      '--header',
      `From: ${s.user}`,
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /<~ {1,2}235 /);
    assert.match(r.out, /<~ {1,2}250 2\.0\.0 Ok: queued as \S+/);
  });
}

test('Python smtplib: 465 implicit TLS (SMTP_SSL) is queued', async () => {
  const script = `
import smtplib, ssl, sys
host, port, user, pw, to = sys.argv[1:6]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
msg = "From: %s\\r\\nTo: %s\\r\\nSubject: hi from python\\r\\n\\r\\nbody\\r\\n" % (user, to)
with smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=15) as c:
    c.ehlo("client.test")
    c.login(user, pw)
    c.mail(user)
    c.rcpt(to)
    code, resp = c.data(msg)
    print(code, resp.decode())
`;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      PYTHON,
      ['-c', script, s.host, String(s.ports.submissions), s.user, s.password, TO],
      { timeout: 30_000 },
      (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
    );
  });
  assert.match(out, /^250 2\.0\.0 Ok: queued as \S+/);
  const row = await queued(s.dir, out);
  assert.deepEqual(row.recipients, [TO]);
  assert.match(row.data, /with ESMTPSA/, 'Received says TLS + AUTH');
});

test('nodemailer: 587 with requireTLS and certificate checked against the CA', async () => {
  const transport = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submission,
    secure: false,
    requireTLS: true,
    auth: { user: s.user, pass: s.password },
    tls: { ca: readFileSync(s.certFile), servername: 'mail.example.test' },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 15_000,
  });
  const info = (await transport.sendMail({
    from: s.user,
    to: TO,
    subject: 'from nodemailer',
    text: 'hello',
  })) as { response: string; accepted: string[] };
  transport.close();
  assert.match(info.response, /^250 2\.0\.0 Ok: queued as /);
  assert.deepEqual(info.accepted, [TO]);
});

test('wrong password is 535 5.7.8', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.submissions, { tls: true });
  try {
    await c.reply();
    await c.cmd('EHLO client.test');
    const r = await c.cmd(`AUTH PLAIN ${plain(s.user, 'not the password')}`);
    assert.equal(r.code, 535, r.raw);
    assert.match(r.lines[0] ?? '', /^5\.7\.8 /);
  } finally {
    c.close();
  }
});

test('MAIL without AUTH on 587 (after STARTTLS) is 530 5.7.0', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.submission);
  try {
    await c.reply();
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    await c.cmd('EHLO client.test');
    const r = await c.cmd(`MAIL FROM:<${s.user}>`);
    assert.equal(r.code, 530, r.raw);
    assert.match(r.lines[0] ?? '', /^5\.7\.0 /);
  } finally {
    c.close();
  }
});

test('AUTH is offered only after STARTTLS, and refused before it', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.submission);
  try {
    await c.reply();
    const ehlo = await c.cmd('EHLO client.test');
    assert.equal(ehlo.code, 250);
    assert.ok(ehlo.lines.includes('STARTTLS'), ehlo.raw);
    assert.ok(!ehlo.lines.some((l) => /^AUTH\b/i.test(l)), `AUTH before TLS: ${ehlo.raw}`);
    const early = await c.cmd(`AUTH PLAIN ${plain(s.user, s.password)}`);
    assert.ok(early.code >= 500 && early.code < 600, early.raw);
    assert.equal((await c.cmd('STARTTLS')).code, 220);
    await c.upgrade();
    const secure = await c.cmd('EHLO client.test');
    assert.ok(
      secure.lines.some((l) => /^AUTH PLAIN LOGIN$/i.test(l)),
      `AUTH after TLS: ${secure.raw}`,
    );
  } finally {
    c.close();
  }
});

test('the authenticated account may not use another envelope sender', async (t) => {
  const cases = [
    { from: 'other@example.test', why: 'another address of the same domain' },
    { from: 'someone@gmail.com', why: 'a foreign address' },
  ];
  for (const { from, why } of cases) {
    await t.test(why, async () => {
      const c = await authed(s);
      try {
        const r = await c.cmd(`MAIL FROM:<${from}>`);
        assert.equal(r.code, 553, r.raw);
        assert.match(r.lines[0] ?? '', /^5\.7\.1 /);
      } finally {
        c.close();
      }
    });
  }
});

test('From header checks at end of DATA', async (t) => {
  const cases = [
    {
      name: 'right envelope, From: boss@example.test',
      header: 'From: boss@example.test\r\n',
      code: 550,
      enhanced: '5.7.1',
    },
    {
      name: 'two From fields',
      header: `From: ${'i@example.test'}\r\nFrom: ${'i@example.test'}\r\n`,
      code: 550,
      enhanced: '5.6.0',
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const conn = await authed(s);
      try {
        assert.equal((await conn.cmd(`MAIL FROM:<${s.user}>`)).code, 250);
        assert.equal((await conn.cmd(`RCPT TO:<${TO}>`)).code, 250);
        assert.equal((await conn.cmd('DATA')).code, 354);
        const r = await conn.cmd(`${c.header}To: ${TO}\r\nSubject: x\r\n\r\nbody\r\n.`);
        assert.equal(r.code, c.code, r.raw);
        assert.match(r.lines[0] ?? '', new RegExp(`^${c.enhanced.replaceAll('.', '\\.')} `));
      } finally {
        conn.close();
      }
    });
  }
});

test('SIZE: advertised, and a declared size over it is refused at MAIL', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.submission);
  try {
    await c.reply();
    const ehlo = await c.cmd('EHLO client.test');
    assert.ok(ehlo.lines.includes('SIZE 52428800'), ehlo.raw);
  } finally {
    c.close();
  }
  const a = await authed(s);
  try {
    const r = await a.cmd(`MAIL FROM:<${s.user}> SIZE=60000000`);
    assert.equal(r.code, 552, r.raw);
  } finally {
    a.close();
  }
});

test('a message over [limits] message_size is 552 5.3.4 at end of DATA', async () => {
  const small = await startServer({ extraToml: '[limits]\nmessage_size = 20000' });
  try {
    const c = await authed(small);
    try {
      assert.equal((await c.cmd(`MAIL FROM:<${small.user}>`)).code, 250);
      assert.equal((await c.cmd(`RCPT TO:<${TO}>`)).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      const line = `${'x'.repeat(98)}\r\n`;
      const body = line.repeat(300); // 30000 bytes
      const r = await c.cmd(`From: ${small.user}\r\nSubject: big\r\n\r\n${body}.`);
      assert.equal(r.code, 552, r.raw);
      assert.match(r.lines[0] ?? '', /^5\.3\.4 /);
    } finally {
      c.close();
    }
  } finally {
    await small.stop();
  }
});

test('an accepted submission gets Message-ID, Date, Received and two DKIM signatures', async () => {
  const c = await authed(s);
  let reply: string;
  try {
    assert.equal((await c.cmd(`MAIL FROM:<${s.user}>`)).code, 250);
    assert.equal((await c.cmd(`RCPT TO:<${TO}>`)).code, 250);
    assert.equal((await c.cmd('DATA')).code, 354);
    const r = await c.cmd(
      `From: Me <${s.user}>\r\nTo: ${TO}\r\nSubject: bare\r\n\r\nno id, no date\r\n.`,
    );
    assert.equal(r.code, 250, r.raw);
    reply = r.raw;
  } finally {
    c.close();
  }
  const row = await queued(s.dir, reply);
  assert.equal(row.sender, s.user);
  assert.deepEqual(row.recipients, [TO]);
  const header = row.data.slice(0, row.data.indexOf('\r\n\r\n'));
  const fields = header.split(/\r\n(?![ \t])/);
  const named = (name: string) =>
    fields.filter((f) => f.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  assert.equal(named('Message-ID').length, 1, header);
  assert.match(named('Message-ID')[0] ?? '', /^Message-ID: <[^@>\s]+@example\.test>$/);
  assert.equal(named('Date').length, 1, header);
  assert.match(
    named('Date')[0] ?? '',
    /^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}$/,
  );
  const received = named('Received');
  assert.equal(received.length, 1, header);
  assert.match(received[0] ?? '', /by mail\.example\.test .*with ESMTPSA/s);
  const dkim = named('DKIM-Signature');
  assert.equal(dkim.length, 2, header);
  for (const sig of dkim) {
    assert.match(sig, /\bd=example\.test\b/);
    assert.match(sig, /\bb=[A-Za-z0-9+/=\s]{20,}/);
  }
  assert.ok(row.data.endsWith('no id, no date\r\n'), 'body kept as sent');
});
