/**
 * The log never holds a secret or a message body, even at the most verbose
 * level: a password (right or wrong, PLAIN or LOGIN, in base64 or not), the
 * body and the subject of a message stay out of every line, from AUTH through
 * acceptance to delivery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import nodemailer from 'nodemailer';
import { startServer } from '../helpers/server.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { RawSmtp, plain } from '../helpers/smtp.ts';

test('at log level trace no password, AUTH exchange, body or subject reaches the log', async () => {
  const mx = await startMxFor('dest.test');
  const s = await startServer({ dns: mx.dns.endpoint, env: { POSTA_LOG_LEVEL: 'trace' } });
  try {
    const wrong = `wrong-${randomBytes(6).toString('hex')}`;
    const marker = `body-${randomBytes(8).toString('hex')}`;
    const subject = `subject-${randomBytes(8).toString('hex')}`;

    const c = await RawSmtp.connect(s.host, s.ports.submission);
    await c.reply();
    await c.cmd('EHLO client.test');
    await c.cmd('STARTTLS');
    await c.upgrade();
    await c.cmd('EHLO client.test');
    assert.equal((await c.cmd(`AUTH PLAIN ${plain(s.user, wrong)}`)).code, 535);
    assert.equal((await c.cmd('AUTH LOGIN')).code, 334);
    await c.cmd(Buffer.from(s.user).toString('base64'));
    assert.equal((await c.cmd(Buffer.from(wrong).toString('base64'))).code, 535);
    await c.cmd('QUIT').catch(() => undefined);

    const t = nodemailer.createTransport({
      host: s.host,
      port: s.ports.submission,
      auth: { user: s.user, pass: s.password },
      tls: { rejectUnauthorized: false },
    });
    await t.sendMail({ from: s.user, to: 'friend@dest.test', subject, text: `${marker}\r\n` });
    t.close();
    const [got] = await mx.rx.waitFor(1);
    assert.ok(got, 'the message was delivered');
    await s.logged(0, '"msg":"delivered"');

    const secrets = [
      s.password,
      wrong,
      plain(s.user, s.password),
      plain(s.user, wrong),
      Buffer.from(s.password).toString('base64'),
      Buffer.from(wrong).toString('base64'),
      marker,
      subject,
    ];
    assert.ok(s.logs.length > 10, 'the log is verbose');
    for (const secret of secrets) {
      const lines = s.logs.filter((l) => l.includes(secret));
      assert.deepEqual(lines, [], `${secret} is in the log`);
    }
  } finally {
    await s.stop();
    await mx.stop();
  }
});
