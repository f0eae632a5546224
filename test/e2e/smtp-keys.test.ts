/**
 * Access keys as SMTP AUTH credentials on 587/465, as SES's SMTP credentials:
 * a key made by `posta key create` logs in with its id and secret (swaks,
 * raw sessions), may send only from its domains that are local ones, is
 * held to its quota (451 4.7.1), shared with the SES API, and what it sends
 * shows in `posta key list` and `posta queue show`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { startServer, type TestServer } from '../helpers/server.ts';
import { posta } from '../helpers/posta.ts';
import { RawSmtp, plain, queued } from '../helpers/smtp.ts';

const TO = 'friend@elsewhere.example';

interface Key {
  id: string;
  secret: string;
}

let s: TestServer;

before(async () => {
  s = await startServer({ http: true });
  await s.reload(async () => {
    const r = await posta(['init', 'other.test', '--dir', s.dir]);
    assert.equal(r.code, 0, r.stderr);
  });
});

after(async () => {
  await s.stop();
});

async function createKey(domain: string, ...flags: string[]): Promise<Key> {
  const r = await posta(['key', 'create', '--domain', domain, ...flags, '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  const k = JSON.parse(r.stdout) as { access_key_id: string; secret_access_key: string };
  return { id: k.access_key_id, secret: k.secret_access_key };
}

async function sentLast24Hours(id: string): Promise<number> {
  const r = await posta(['key', 'list', '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  const keys = JSON.parse(r.stdout) as { id: string; sent_last_24_hours: number }[];
  const k = keys.find((x) => x.id === id);
  assert.ok(k, `${id} is in posta key list`);
  return k.sent_last_24_hours;
}

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

/** STARTTLS on 587 and AUTH PLAIN with `user`/`secret`; returns the session and the AUTH reply. */
async function login(user: string, secret: string) {
  const c = await RawSmtp.connect(s.host, s.ports.submission);
  assert.equal((await c.reply()).code, 220);
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  assert.equal((await c.cmd('STARTTLS')).code, 220);
  await c.upgrade();
  assert.equal((await c.cmd('EHLO client.test')).code, 250);
  const auth = await c.cmd(`AUTH PLAIN ${plain(user, secret)}`);
  return { c, auth };
}

async function authed(key: Key): Promise<RawSmtp> {
  const { c, auth } = await login(key.id, key.secret);
  assert.equal(auth.code, 235, auth.raw);
  return c;
}

/** One transaction up to the 354 of DATA; fails the test if a command is refused. */
async function upToData(c: RawSmtp, from: string, to: string[]): Promise<void> {
  const mail = await c.cmd(`MAIL FROM:<${from}>`);
  assert.equal(mail.code, 250, mail.raw);
  for (const r of to) {
    const rcpt = await c.cmd(`RCPT TO:<${r}>`);
    assert.equal(rcpt.code, 250, rcpt.raw);
  }
  assert.equal((await c.cmd('DATA')).code, 354);
}

function body(from: string, to: string[], subject = 'key test'): string {
  return `From: ${from}\r\nTo: ${to.join(', ')}\r\nSubject: ${subject}\r\n\r\nHello.\r\n.`;
}

/** One whole message in the session; the reply to its end of DATA. */
async function send(c: RawSmtp, from: string, to: string[], headerFrom = from) {
  await upToData(c, from, to);
  return c.cmd(body(headerFrom, to));
}

for (const method of ['PLAIN', 'LOGIN']) {
  test(`swaks: 587 STARTTLS + AUTH ${method} with a key's id and secret is queued`, async () => {
    const key = await createKey('example.test');
    const r = await swaks([
      '--server',
      `${s.host}:${s.ports.submission}`,
      '--tls',
      '--auth',
      method,
      '--auth-user',
      key.id,
      '--auth-password',
      key.secret,
      '--from',
      'app@example.test',
      '--to',
      TO,
      '--header',
      'From: App <app@example.test>',
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /<~ {1,2}235 /);
    const id = /<~ {1,2}250 2\.0\.0 Ok: queued as (\S+)/.exec(r.out)?.[1];
    assert.ok(id, r.out);

    const show = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
    assert.equal(show.code, 0, show.stderr);
    const detail = JSON.parse(show.stdout) as {
      queued: {
        sender: string;
        account: string;
        apiKey: string;
        recipients: { address: string }[];
      };
      from: string[];
    };
    assert.equal(detail.queued.sender, 'app@example.test');
    assert.equal(detail.queued.account, key.id, 'the session user is the key id');
    assert.equal(detail.queued.apiKey, key.id, 'the envelope carries the key');
    assert.deepEqual(
      detail.queued.recipients.map((x) => x.address),
      [TO],
    );
    const row = await queued(s.dir, `queued as ${id}`);
    assert.match(row.data, /with ESMTPSA/);
    assert.match(row.data, /DKIM-Signature: .*d=example\.test/);
    assert.equal(await sentLast24Hours(key.id), 1);
  });
}

test('a wrong secret is 535 5.7.8, after the failure delay', async () => {
  const key = await createKey('example.test');
  const started = Date.now();
  const { c, auth } = await login(key.id, `${key.secret.slice(0, -1)}x`);
  try {
    assert.equal(auth.code, 535, auth.raw);
    assert.match(auth.lines[0] ?? '', /^5\.7\.8 /);
    assert.ok(Date.now() - started >= 900, 'a wrong secret waits as a wrong password does');
  } finally {
    c.close();
  }
  // on 465 too
  const t = await RawSmtp.connect(s.host, s.ports.submissions, { tls: true });
  try {
    await t.reply();
    await t.cmd('EHLO client.test');
    const r = await t.cmd(`AUTH PLAIN ${plain(key.id, 'not-the-secret')}`);
    assert.equal(r.code, 535, r.raw);
  } finally {
    t.close();
  }
});

test('a revoked key is 535; one revoked during a session cannot start another message', async () => {
  const key = await createKey('example.test');
  const open = await authed(key);
  try {
    const revoke = await posta(['key', 'revoke', key.id, '--dir', s.dir]);
    assert.equal(revoke.code, 0, revoke.stderr);

    const { c, auth } = await login(key.id, key.secret);
    c.close();
    assert.equal(auth.code, 535, auth.raw);

    const mail = await open.cmd('MAIL FROM:<app@example.test>');
    assert.equal(mail.code, 530, mail.raw);
    assert.match(mail.raw, new RegExp(`5\\.7\\.0 Access key ${key.id} has been revoked`));
  } finally {
    open.close();
  }
});

test('a key sends only from its domains: MAIL FROM and From of another domain are refused', async () => {
  const onlyExample = await createKey('example.test');
  const onlyOther = await createKey('other.test');

  const c = await authed(onlyExample);
  try {
    const mail = await c.cmd('MAIL FROM:<app@other.test>');
    assert.equal(mail.code, 553, mail.raw);
    assert.match(
      mail.raw,
      new RegExp(`^553 5\\.7\\.1 ${onlyExample.id} may send from example\\.test only`),
    );
  } finally {
    c.close();
  }

  const o = await authed(onlyOther);
  try {
    const mail = await o.cmd('MAIL FROM:<i@example.test>');
    assert.equal(mail.code, 553, mail.raw);
    assert.match(mail.raw, new RegExp(`${onlyOther.id} may send from other\\.test only`));

    // the envelope of its own domain, the From of another
    const forged = await send(o, 'app@other.test', [TO], 'i@example.test');
    assert.equal(forged.code, 550, forged.raw);
    assert.match(
      forged.raw,
      new RegExp(`^550 5\\.7\\.1 ${onlyOther.id} may send from other\\.test only, not with From`),
    );

    // and its own domain goes, signed by it
    const ok = await send(o, 'news@other.test', [TO]);
    assert.match(ok.raw, /^250 2\.0\.0 Ok: queued as /, ok.raw);
    const row = await queued(s.dir, ok.raw);
    assert.match(row.data, /DKIM-Signature: .*d=other\.test/);
  } finally {
    o.close();
  }
  assert.equal(await sentLast24Hours(onlyOther.id), 1, 'refused messages do not count');
});

test('--rate 1: messages sent quickly in one session get 451 4.7.1 once over it', async () => {
  const key = await createKey('example.test', '--rate', '1');
  const c = await authed(key);
  const replies = [];
  try {
    for (let i = 0; i < 4; i++) replies.push(await send(c, 'app@example.test', [TO]));
  } finally {
    c.close();
  }
  assert.match(replies[0]?.raw ?? '', /^250 2\.0\.0 Ok: queued as /);
  const refused = replies.filter((r) => r.code === 451);
  assert.ok(refused.length > 0, replies.map((r) => r.raw).join(''));
  for (const r of refused) {
    assert.match(
      r.raw,
      new RegExp(`^451 4\\.7\\.1 Maximum sending rate exceeded for access key ${key.id}`),
    );
  }
  const accepted = replies.filter((r) => r.code === 250).length;
  assert.equal(await sentLast24Hours(key.id), accepted, 'only what was queued counts');
});

test('--daily: sent_last_24_hours grows by the recipients, and past the quota 451 4.7.1', async () => {
  const key = await createKey('example.test', '--daily', '3');
  assert.equal(await sentLast24Hours(key.id), 0);
  const c = await authed(key);
  try {
    const two = await send(c, 'app@example.test', [TO, 'other@elsewhere.example']);
    assert.match(two.raw, /^250 2\.0\.0 Ok: queued as /, two.raw);
    assert.equal(await sentLast24Hours(key.id), 2, 'SES counts recipients, not messages');

    const over = await send(c, 'app@example.test', [TO, 'third@elsewhere.example']);
    assert.match(
      over.raw,
      new RegExp(`^451 4\\.7\\.1 Daily message quota exceeded for access key ${key.id}`),
    );
    assert.equal(await sentLast24Hours(key.id), 2);

    const one = await send(c, 'app@example.test', [TO]);
    assert.match(one.raw, /^250 2\.0\.0 /, 'what still fits goes');
  } finally {
    c.close();
  }
  assert.equal(await sentLast24Hours(key.id), 3);
});

test('the rate is one over the SES API and SMTP together', async () => {
  const key = await createKey('example.test', '--rate', '1');
  const c = await authed(key);
  try {
    // the SMTP transaction waits at DATA while the API takes the one token
    await upToData(c, 'app@example.test', [TO]);
    const ses = new SESv2Client({
      endpoint: `http://${s.host}:${s.ports.http}`,
      region: 'us-east-1',
      credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
      maxAttempts: 1,
    });
    try {
      const out = await ses.send(
        new SendEmailCommand({
          FromEmailAddress: 'app@example.test',
          Destination: { ToAddresses: [TO] },
          Content: { Simple: { Subject: { Data: 'api' }, Body: { Text: { Data: 'Hello.' } } } },
        }),
      );
      assert.ok(out.MessageId);
    } finally {
      ses.destroy();
    }
    const r = await c.cmd(body('app@example.test', [TO]));
    assert.match(r.raw, /^451 4\.7\.1 Maximum sending rate exceeded/, r.raw);
  } finally {
    c.close();
  }
  assert.equal(await sentLast24Hours(key.id), 1);
});

test('an account still logs in and sends as before', async () => {
  const { c, auth } = await login(s.user, s.password);
  try {
    assert.equal(auth.code, 235, auth.raw);
    const mail = await c.cmd('MAIL FROM:<app@example.test>');
    assert.match(
      mail.raw,
      /^553 5\.7\.1 i@example\.test may not send as <app@example\.test>; use your own address/,
    );
    const ok = await send(c, s.user, [TO]);
    assert.match(ok.raw, /^250 2\.0\.0 Ok: queued as /, ok.raw);
  } finally {
    c.close();
  }
});
