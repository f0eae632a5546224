import { test } from 'node:test';
import assert from 'node:assert/strict';
import { strictMailboxes } from './mailbox.ts';
import { readOriginator } from './originator.ts';

// value -> the addresses read, or a pattern of the problem
const table: [string, string[] | RegExp][] = [
  ['i@example.com', ['i@example.com']],
  [' <i@example.com> ', ['i@example.com']],
  ['"boss@bank.test" <i@example.com>', ['i@example.com']],
  ['=?utf-8?q?J=C3=BCrgen?= <i@example.com>', ['i@example.com']],
  ['i@example.com (Me, myself)', /"," inside a comment/],
  ['Me (the boss) <i@example.com>', ['i@example.com']],
  ['J. Smith <i@example.com>', ['i@example.com']],
  ['J.<i@example.com>', /ends in "\." right before "<"/],
  ['a@example.com, b@example.com', ['a@example.com', 'b@example.com']],
  ['jürgen@bücher.test', ['jürgen@bücher.test']],
  ['', /is empty/],
  ['  (only a comment) ', /is empty/],
  ['<>', /empty address <>/],
  ['Boss', /no address/],
  ['=?utf-8?q?boss=40bank=2Etest?=', /no address/],
  ['undisclosed-recipients:;', /is a group/],
  ['team: i@example.com;', /is a group/],
  ['boss@bank.test <i@example.com>', /unquoted "@"/],
  ['boss@bank.test\u00a0<i@example.com>', /no-break space/],
  ['"a\u00a0b" <i@example.com>', /no-break space/],
  ['Boss\u3000<i@example.com>', /U\+3000/],
  ['a, <i@example.com>', /no address/],
  ['a > b <i@example.com>', /unquoted ">"/],
  ['<i@example.com> trailing', /after the address/],
  ['< i@example.com>', /not a plain address/],
  ['<"i"@example.com>', /not a plain address/],
  ['"i"@example.com', /not a plain address|no address|unquoted "@"/],
  ['=?utf-8?q?i?=@example.com', /encoded word/],
  ['"=?utf-8?q?a?=" <i@example.com>', /encoded word .*inside quotes/],
  ['i@[127.0.0.1]', /not a plain address/],
  ['.i@example.com', /misplaced dot/],
  ['"unclosed <i@example.com>', /not closed/],
  ['(unclosed <i@example.com>', /not closed/],
  ['a\\b <i@example.com>', /backslash/],
];
for (const [value, want] of table) {
  test(`strictMailboxes(${JSON.stringify(value)})`, () => {
    const r = strictMailboxes(value, { field: 'From' });
    if (Array.isArray(want)) {
      assert.ok(r.ok, r.ok ? '' : r.problem);
      assert.deepEqual(
        r.mailboxes.map((m) => m.address),
        want,
      );
    } else {
      assert.ok(!r.ok, `accepted ${JSON.stringify(r)}`);
      assert.match(r.problem, want);
    }
  });
}

test('bareLocal takes cron\'s "root (Cron Daemon)", and only one atom', () => {
  const r = strictMailboxes('root (Cron Daemon)', { field: 'From', bareLocal: true });
  assert.deepEqual(r.ok && r.mailboxes, [{ name: '', address: 'root' }]);
  assert.ok(!strictMailboxes('Cron Daemon', { field: 'From', bareLocal: true }).ok);
  assert.ok(!strictMailboxes('root', { field: 'From' }).ok);
});

const headers: [string, RegExp | null][] = [
  ['From: i@example.com\r\nSubject: x\r\n', null],
  ['From: a@example.com,\r\n b@example.com\r\nSender: a@example.com\r\n', null],
  ['Subject: x\r\n', /no From field/],
  ['From: i@example.com\r\nfrom: i@example.com\r\n', /exactly one From field; it has 2/],
  ['From : boss@bank.test\r\nFrom: i@example.com\r\n', /space before the colon/],
  ['From: i@example.com\r\nReply-To\t: x@y.test\r\n', /Reply-To field name/],
  ['X-Other : fine\r\nFrom: i@example.com\r\n', null],
  ['From: a@example.com, b@example.com\r\n', /needs a Sender field/],
  ['From: i@example.com\r\nSender: a@x.test, b@x.test\r\n', /Sender field must be one mailbox/],
  ['From: i@example.com\r\nSender: a@x.test\r\nSender: a@x.test\r\n', /at most one Sender/],
  ['From: i@example.com\r\nnot a field\r\n', /Line 2 of the header is not a field/],
  [' folded\r\nFrom: i@example.com\r\n', /starts with a folded line/],
];
for (const [header, want] of headers) {
  test(`readOriginator(${JSON.stringify(header)})`, () => {
    const r = readOriginator(Buffer.from(header, 'latin1'));
    if (want === null) assert.ok(r.ok, r.ok ? '' : r.problem);
    else assert.match(r.ok ? 'accepted' : r.problem, want);
  });
}

test('readOriginator refuses invalid UTF-8 and reads valid UTF-8', () => {
  const bad = readOriginator(Buffer.from('From: Zo\xeb <i@example.com>\r\n', 'latin1'));
  assert.match(bad.ok ? '' : bad.problem, /not valid UTF-8/);
  const good = readOriginator(Buffer.from('From: Zoë <i@example.com>\r\n', 'utf8'));
  assert.ok(good.ok);
  assert.equal(good.value.from[0]?.name, 'Zoë');
});
