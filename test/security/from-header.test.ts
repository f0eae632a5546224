/**
 * The From and Sender of posta's own senders, across the wire (issue 12,
 * defects 1 and 2): on 587, Python's smtplib submits each variant as the
 * account i@example.test. A From with no address (an encoded word, a name, a
 * group, an empty field, <>), a From that parsers read differently (an
 * unquoted @ in the name, no-break spaces, "From :" above "From:") and a
 * Sender the account may not use get 550 and are not queued; valid Froms
 * arrive at the MX signed, and dkimpy verifies them. `posta sendmail` refuses
 * the same with exit 1 and one sentence.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { posta } from '../helpers/posta.ts';
import { dkimpy, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { readQueue } from '../helpers/smtp.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let dkimDns: DnsServer;
let s: TestServer;

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ dns: mx.dns.endpoint, extraToml: '[delivery]\nfirst_retry = 1' });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

/**
 * One smtplib session on 587 (STARTTLS, AUTH PLAIN) that sends each message
 * (latin1 bytes, the header as given) to its recipient; the DATA replies.
 */
function submitAll(messages: { to: string; header: string }[]): Promise<string[]> {
  const script = `
import base64, json, smtplib, ssl, sys
host, port, user, pw = sys.argv[1:5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = []
with smtplib.SMTP(host, int(port), timeout=15) as c:
    c.ehlo("client.test")
    c.starttls(context=ctx)
    c.ehlo("client.test")
    token = base64.b64encode(("\\0%s\\0%s" % (user, pw)).encode()).decode()
    assert c.docmd("AUTH", "PLAIN " + token)[0] == 235
    for m in json.load(sys.stdin):
        assert c.mail(user)[0] == 250
        assert c.rcpt(m["to"])[0] == 250
        body = (m["header"] + "To: " + m["to"] + "\\r\\nSubject: from test\\r\\n\\r\\nHello.\\r\\n").encode("latin1")
        code, resp = c.data(body)
        out.append("%d %s" % (code, resp.decode()))
json.dump(out, sys.stdout)
`;
  return new Promise((resolve, reject) => {
    const child = execFile(
      '/usr/bin/python3',
      ['-c', script, s.host, String(s.ports.submission), s.user, s.password],
      { timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(stderr || err.message));
        resolve(JSON.parse(stdout) as string[]);
      },
    );
    child.stdin?.end(JSON.stringify(messages));
  });
}

/** UTF-8 text as the latin1 string of its bytes (what submitAll sends). */
const bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

const refused: [string, string, RegExp][] = [
  [
    'an address only in an encoded word',
    'From: =?utf-8?q?boss=40bank=2Etest?=\r\n',
    /^550 5\.6\.0 The From field has no address/,
  ],
  ['a name only', 'From: Boss\r\n', /^550 5\.6\.0 The From field has no address/],
  [
    'an empty group',
    'From: undisclosed-recipients:;\r\n',
    /^550 5\.6\.0 The From field is a group/,
  ],
  ['an empty From', 'From:\r\n', /^550 5\.6\.0 The From field is empty/],
  ['<>', 'From: <>\r\n', /^550 5\.6\.0 The From field has the empty address <>/],
  [
    'an unquoted @ in the display name',
    'From: boss@bank.test <i@example.test>\r\n',
    /^550 5\.6\.0 The From field has an unquoted "@" in its display name/,
  ],
  [
    'a no-break space (UTF-8) before <',
    bytes('From: boss@bank.test\u00a0<i@example.test>\r\n'),
    /^550 5\.6\.0 The From field contains a no-break space/,
  ],
  [
    'a no-break space (a latin1 byte) before <',
    'From: boss@bank.test\u00a0<i@example.test>\r\n',
    /^550 5\.6\.0 The From field is not valid UTF-8/,
  ],
  [
    '"From :" above "From:"',
    'From : boss@bank.test\r\nFrom: i@example.test\r\n',
    /^550 5\.6\.0 The From field name is followed by a space before the colon/,
  ],
  [
    '"Sender :" below From',
    'From: i@example.test\r\nSender : boss@bank.test\r\n',
    /^550 5\.6\.0 The Sender field name is followed by a space/,
  ],
  [
    'a Sender the account may not use',
    'From: i@example.test\r\nSender: boss@bank.test\r\n',
    /^550 5\.7\.1 i@example\.test may not send with Sender: boss@bank\.test/,
  ],
  [
    'a Sender with an unquoted @ in its name',
    'From: i@example.test\r\nSender: boss@bank.test <i@example.test>\r\n',
    /^550 5\.6\.0 The Sender field has an unquoted "@"/,
  ],
  ['no From at all', 'Reply-To: i@example.test\r\n', /^550 5\.6\.0 The message has no From field/],
];

test('a From or Sender that is not one unambiguous mailbox is refused with 550 and not queued', async (t) => {
  const before = readQueue(s.dir).length;
  const replies = await submitAll(
    refused.map((_, n) => ({ to: `no${n}@dest.test`, header: _[1] })),
  );
  for (const [n, [name, , want]] of refused.entries()) {
    await t.test(name, () => assert.match(replies[n] ?? '', want));
  }
  assert.equal(readQueue(s.dir).length, before, 'nothing refused was queued');
});

const accepted: [string, string][] = [
  ['a plain address', 'From: i@example.test\r\n'],
  ['a quoted display name with @ inside', 'From: "boss@bank.test" <i@example.test>\r\n'],
  [
    'an encoded-word display name',
    'From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <i@example.test>\r\n',
  ],
  ['a comment', 'From: i@example.test (Ich)\r\n'],
  ['a name and a comment, folded', 'From: Ich (the\r\n boss) <i@example.test>\r\n'],
  ['a UTF-8 name', bytes('From: Zoë Ünal <i@example.test>\r\n')],
  ['a Sender of its own', 'From: "I" <i@example.test>\r\nSender: i@example.test\r\n'],
];

test('valid Froms are accepted, delivered and signed: dkimpy verifies them', async () => {
  const replies = await submitAll(
    accepted.map((a, n) => ({ to: `ok${n}@dest.test`, header: a[1] })),
  );
  for (const [n, [name]] of accepted.entries()) {
    assert.match(replies[n] ?? '', /^250 /, name);
  }
  for (const [n, [name, header]] of accepted.entries()) {
    const m = await mx.rx.arrival((r) => r.rcptTos.includes(`ok${n}@dest.test`), name);
    assert.ok(m.data.includes(Buffer.from(header, 'latin1')), `${name}: the From as sent`);
    assert.match(m.data.toString(), /^DKIM-Signature: [^]*d=example\.test/, name);
    const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
    assert.equal(v.code, 0, `${name}: ${v.out}`);
  }
});

const local: [string, string, RegExp | null][] = [
  ['an unquoted @ in the display name', 'From: boss@bank.test <i@example.test>\n', /unquoted "@"/],
  ['an empty group', 'From: undisclosed-recipients:;\n', /is a group/],
  [
    '"From :" above "From:"',
    // (first, it would be a mbox "From " line, which sendmail drops)
    'To: x@dest.test\nFrom : boss@bank.test\nFrom: i@example.test\n',
    /space before the colon/,
  ],
  [
    'a foreign Sender',
    'From: i@example.test\nSender: boss@bank.test\n',
    /Sender field <boss@bank\.test>/,
  ],
  ["cron's From", 'From: root (Cron Daemon)\n', null],
];

test("posta sendmail refuses the same with exit 1 and one sentence; cron's From still works", async (t) => {
  for (const [name, header, want] of local) {
    await t.test(name, async () => {
      const r = await posta(['sendmail', '--dir', s.dir, 'x@dest.test'], {
        input: `${header}Subject: local\n\nHello.\n`,
      });
      if (want === null) {
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        return;
      }
      assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, want, name);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line: ${r.stderr}`);
    });
  }
});
