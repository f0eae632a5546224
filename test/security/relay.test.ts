/**
 * Open-relay probes: the 16 MAIL FROM / RCPT TO pairs of nmap's
 * smtp-open-relay.nse, against port 25 with a catch-all for example.test (the
 * most tempting setup: every local part of the domain is accepted). Each must
 * be refused at RCPT, and nothing addressed elsewhere may reach the queue.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp, addCatchAll, readQueue } from '../helpers/smtp.ts';

let s: TestServer;

before(async () => {
  s = await startServer();
  await addCatchAll(s);
});

after(async () => {
  await s.stop();
});

// nmap's defaults: from "antispam", to "relaytest", domain "nmap.scanme.org";
// srvname is the server's own name, here the local domain the catch-all serves.
function nmapPatterns(ip: string, srvname: string): { from: string; to: string }[] {
  const from = 'antispam';
  const to = 'relaytest';
  const domain = 'nmap.scanme.org';
  return [
    { from: '', to: `${to}@${domain}` },
    { from: `${from}@${domain}`, to: `${to}@${domain}` },
    { from: `${from}@${srvname}`, to: `${to}@${domain}` },
    { from: `${from}@[${ip}]`, to: `${to}@${domain}` },
    { from: `${from}@[${ip}]`, to: `${to}%${domain}@[${ip}]` },
    { from: `${from}@[${ip}]`, to: `${to}%${domain}@${srvname}` },
    { from: `${from}@[${ip}]`, to: `"${to}@${domain}"` },
    { from: `${from}@[${ip}]`, to: `"${to}%${domain}"` },
    { from: `${from}@[${ip}]`, to: `${to}@${domain}@[${ip}]` },
    { from: `${from}@[${ip}]`, to: `"${to}@${domain}"@[${ip}]` },
    { from: `${from}@[${ip}]`, to: `${to}@${domain}@${srvname}` },
    { from: `${from}@[${ip}]`, to: `@[${ip}]:${to}@${domain}` },
    { from: `${from}@[${ip}]`, to: `@${srvname}:${to}@${domain}` },
    { from: `${from}@[${ip}]`, to: `${domain}!${to}` },
    { from: `${from}@[${ip}]`, to: `${domain}!${to}@[${ip}]` },
    { from: `${from}@[${ip}]`, to: `${domain}!${to}@${srvname}` },
  ];
}

function foreign(address: string): boolean {
  return !/^[^@%!"]+@example\.test$/i.test(address);
}

test('the catch-all itself works: a local recipient is accepted on port 25', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    await c.reply();
    await c.cmd('EHLO relay-probe.test');
    assert.equal((await c.cmd('MAIL FROM:<someone@elsewhere.example>')).code, 250);
    const r = await c.cmd('RCPT TO:<anything@example.test>');
    assert.equal(r.code, 250, r.raw);
  } finally {
    c.close();
  }
});

for (const srvname of ['example.test', 'mail.example.test']) {
  test(`nmap smtp-open-relay: all 16 patterns are refused at RCPT (srvname ${srvname})`, async (t) => {
    const patterns = nmapPatterns(s.host, srvname);
    assert.equal(patterns.length, 16);
    for (const [i, p] of patterns.entries()) {
      await t.test(`#${i + 1} MAIL FROM:<${p.from}> RCPT TO:<${p.to}>`, async () => {
        const c = await RawSmtp.connect(s.host, s.ports.smtp);
        try {
          assert.equal((await c.reply()).code, 220);
          assert.equal((await c.cmd(`EHLO ${srvname}`)).code, 250);
          await c.cmd(`MAIL FROM:<${p.from}>`);
          const rcpt = await c.cmd(`RCPT TO:<${p.to}>`);
          assert.ok(rcpt.code >= 500 && rcpt.code < 600, `RCPT must be refused: ${rcpt.raw}`);
          // Try to send anyway: there is no accepted recipient, so DATA fails.
          const data = await c.cmd('DATA');
          if (data.code === 354) {
            const end = await c.cmd('Subject: relay test\r\n\r\nrelay\r\n.');
            assert.notEqual(end.code, 250, `message accepted: ${end.raw}`);
          } else {
            assert.ok(data.code >= 500, data.raw);
          }
        } finally {
          c.close();
        }
      });
    }
  });
}

test('port 587 without AUTH cannot relay, before or after STARTTLS', async (t) => {
  for (const tls of [false, true]) {
    for (const from of ['', 'antispam@nmap.scanme.org', 'i@example.test']) {
      await t.test(`tls=${tls} MAIL FROM:<${from}>`, async () => {
        const c = await RawSmtp.connect(s.host, s.ports.submission);
        try {
          await c.reply();
          await c.cmd('EHLO relay-probe.test');
          if (tls) {
            assert.equal((await c.cmd('STARTTLS')).code, 220);
            await c.upgrade();
            await c.cmd('EHLO relay-probe.test');
          }
          const mail = await c.cmd(`MAIL FROM:<${from}>`);
          assert.equal(mail.code, 530, mail.raw);
          assert.match(mail.lines[0] ?? '', /^5\.7\.0 /);
          const rcpt = await c.cmd('RCPT TO:<relaytest@nmap.scanme.org>');
          assert.ok(rcpt.code >= 500, rcpt.raw);
          const data = await c.cmd('DATA');
          assert.ok(data.code >= 500, data.raw);
        } finally {
          c.close();
        }
      });
    }
  }
});

test('nothing addressed to a foreign domain is in the queue', () => {
  const queue = readQueue(s.dir);
  for (const m of queue) {
    for (const r of m.recipients) {
      assert.ok(!foreign(r), `queued for ${r} (message ${m.id})`);
    }
    assert.doesNotMatch(m.data, /relaytest/);
  }
});
