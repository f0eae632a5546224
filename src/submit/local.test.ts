import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { PostaError, UsageError } from '../errors.ts';
import type { DkimKey } from '../dkim/keys.ts';
import {
  findDotLine,
  listAddresses,
  normaliseAddress,
  prepareLocal,
  splitMessage,
  stampLocal,
  toCrlf,
  type LocalInput,
} from './local.ts';

const DOMAINS = ['example.test', 'other.test'];

const dots: [string, boolean, { at: number } | { resume: number }][] = [
  ['a\n.\nb\n', false, { at: 2 }],
  ['a\r\n.\r\nb\r\n', false, { at: 3 }],
  ['.\n', false, { at: 0 }],
  ['a\n..\n', false, { resume: 5 }],
  ['a\n. \n', false, { resume: 5 }],
  ['a\n.', false, { resume: 2 }],
  ['a\n.', true, { at: 2 }],
  ['a\n.\r', true, { at: 2 }],
  ['a\nb', true, { resume: 2 }],
  ['a.\n', false, { resume: 3 }],
];
for (const [input, eof, want] of dots) {
  test(`findDotLine(${JSON.stringify(input)}, eof=${eof}) -> ${JSON.stringify(want)}`, () => {
    assert.deepEqual(findDotLine(Buffer.from(input), 0, eof), want);
  });
}

const lineEnds: [string, string][] = [
  ['a\nb\n', 'a\r\nb\r\n'],
  ['a\r\nb\r\n', 'a\r\nb\r\n'],
  ['a\rb', 'a\r\nb\r\n'],
  ['a\n\n\nb', 'a\r\n\r\n\r\nb\r\n'],
  ['', ''],
];
for (const [input, want] of lineEnds) {
  test(`toCrlf(${JSON.stringify(input)}) -> ${JSON.stringify(want)}`, () => {
    assert.equal(toCrlf(Buffer.from(input)), want);
  });
}

test('toCrlf refuses a NUL byte and keeps 8-bit bytes as they are', () => {
  assert.throws(() => toCrlf(Buffer.from('a\0b\n')), PostaError);
  const utf8 = Buffer.from('Subject: Grüße\n\nÄ\n');
  assert.deepEqual(Buffer.from(toCrlf(utf8), 'latin1'), Buffer.from('Subject: Grüße\r\n\r\nÄ\r\n'));
});

const splits: [string, string[], string][] = [
  ['A: 1\r\nB: 2\r\n\r\nbody\r\n', ['A: 1\r\n', 'B: 2\r\n'], 'body\r\n'],
  ['A: 1\r\n folded\r\n\r\n', ['A: 1\r\n folded\r\n'], ''],
  ['From alice Tue Jan  1\r\nA: 1\r\n\r\nx\r\n', ['A: 1\r\n'], 'x\r\n'],
  ['A: 1\r\nnot a field\r\nmore\r\n', ['A: 1\r\n'], 'not a field\r\nmore\r\n'],
  ['just text\r\n', [], 'just text\r\n'],
];
for (const [input, fields, body] of splits) {
  test(`splitMessage(${JSON.stringify(input)})`, () => {
    assert.deepEqual(splitMessage(input), { fields, body });
  });
}

const lists: [string, string[]][] = [
  ['root', ['root']],
  ['root (Cron Daemon)', ['root']],
  ['"A B" <a@b.test>, c@d.test', ['a@b.test', 'c@d.test']],
  ['undisclosed-recipients:;', []],
  ['team: a@b.test, c@d.test;', ['a@b.test', 'c@d.test']],
  ['Some Name', []],
];
for (const [input, want] of lists) {
  test(`listAddresses(${JSON.stringify(input)}) -> ${JSON.stringify(want)}`, () => {
    assert.deepEqual(listAddresses(input), want);
  });
}

const norms: [string, string | null][] = [
  ['root', 'root@example.test'],
  ['I@Example.TEST', 'i@example.test'],
  ['<i@example.test>', 'i@example.test'],
  ['Bob@Remote.TEST', 'Bob@remote.test'],
  ['x@bücher.test', 'x@xn--bcher-kva.test'],
  ['a%b@remote.test', null],
  ['a!b@remote.test', null],
  ['@remote.test', null],
  ['root@localhost', 'root@example.test'],
  ['x@nodot', null],
];
for (const [input, want] of norms) {
  test(`normaliseAddress(${JSON.stringify(input)}) -> ${want}`, () => {
    assert.equal(normaliseAddress(input, DOMAINS, 'example.test'), want);
  });
}

const input = (over: Partial<LocalInput> & { text: string }): LocalInput => ({
  data: Buffer.from(over.text),
  fromHeaders: over.fromHeaders ?? false,
  recipients: over.recipients ?? [],
  sender: over.sender,
  fullName: over.fullName,
  domains: over.domains ?? DOMAINS,
});

/** The message as queued: stamped (no keys), as text. */
const stamped = async (m: ReturnType<typeof prepareLocal>) =>
  (
    await stampLocal(m, {
      hostname: 'h.test',
      queueId: 'Q',
      date: new Date(),
      keys: [],
      user: { uid: 0, name: 'root' },
    })
  ).data.toString();

const MSG = [
  'From: Me <me@example.test>',
  'To: a@dest.test, "B" <b@dest.test>',
  'Cc: c@dest.test',
  'Bcc: hidden@dest.test,',
  ' also@dest.test',
  'Subject: hi',
  '',
  'Bcc: in the body stays',
  '',
].join('\n');

test('-t takes To, Cc and Bcc, adds command-line recipients, removes Bcc', async () => {
  const m = prepareLocal(input({ text: MSG, fromHeaders: true, recipients: ['extra@dest.test'] }));
  assert.deepEqual(m.recipients, [
    'extra@dest.test',
    'a@dest.test',
    'b@dest.test',
    'c@dest.test',
    'hidden@dest.test',
    'also@dest.test',
  ]);
  assert.equal(m.sender, 'me@example.test');
  assert.equal(m.fromDomain, 'example.test');
  const text = await stamped(m);
  const head = text.slice(0, text.indexOf('\r\n\r\n'));
  assert.doesNotMatch(head, /^Bcc:/im);
  assert.doesNotMatch(text, /also@dest/);
  assert.match(text, /\r\n\r\nBcc: in the body stays\r\n$/);
  assert.doesNotMatch(text.replace(/\r\n/g, ''), /\n/, 'only CRLF line ends');
});

test('without -t only the command line counts; Bcc is removed all the same', async () => {
  const m = prepareLocal(input({ text: MSG, recipients: ['x@dest.test'] }));
  assert.deepEqual(m.recipients, ['x@dest.test']);
  assert.doesNotMatch(await stamped(m), /^Bcc: hidden/im);
});

test('a line over 998 octets is refused, a folded long header is not', () => {
  const long = `${MSG}${'x'.repeat(999)}\n`;
  assert.throws(
    () => prepareLocal(input({ text: long, recipients: ['x@dest.test'] })),
    (err: Error) => err instanceof PostaError && /Line 9 .* 999 octets long/.test(err.message),
  );
  const folded = `Subject: ${'y'.repeat(900)}\n ${'y'.repeat(900)}\n${MSG}`;
  assert.ok(prepareLocal(input({ text: folded, recipients: ['x@dest.test'] })));
});

const senders: [string, Partial<LocalInput>, string | RegExp][] = [
  ['-f wins over From', { sender: 'Other@Other.TEST' }, 'other@other.test'],
  ['-f in angle brackets', { sender: '<me@example.test>' }, 'me@example.test'],
  ['From when no -f', {}, 'me@example.test'],
  ['-f of a foreign domain', { sender: 'me@elsewhere.test' }, /not an address of this server/],
  ['no domains at all', { domains: [] }, /no domain to send from/],
];
for (const [name, over, want] of senders) {
  test(`sender: ${name}`, () => {
    const run = () => prepareLocal(input({ text: MSG, recipients: ['x@dest.test'], ...over }));
    if (typeof want === 'string') assert.equal(run().sender, want);
    else assert.throws(run, (err: Error) => err instanceof PostaError && want.test(err.message));
  });
}

test('a foreign From is sent with a local -f but not signed for', () => {
  const m = prepareLocal(
    input({
      text: 'From: x@elsewhere.test\n\nhi\n',
      recipients: ['r@dest.test'],
      sender: 'i@example.test',
    }),
  );
  assert.equal(m.fromDomain, 'elsewhere.test');
});

test('no From field: one is added from the sender (with -F), postmaster by default', () => {
  const m = prepareLocal(input({ text: 'Subject: x\n\nbody\n', recipients: ['root'] }));
  assert.equal(m.sender, 'postmaster@example.test');
  assert.deepEqual(m.recipients, ['root@example.test']);
  assert.match(
    m.data.toString(),
    /^From: <postmaster@example\.test>\r\nSubject: x\r\n\r\nbody\r\n$/,
  );
  const named = prepareLocal(
    input({
      text: 'hi\n',
      recipients: ['r@dest.test'],
      sender: 'cron@example.test',
      fullName: 'Cron "D"',
    }),
  );
  assert.match(named.data.toString(), /^From: "Cron \\"D\\"" <cron@example\.test>\r\n\r\nhi\r\n$/);
  assert.equal(named.fromDomain, 'example.test');
});

test('no recipients is a usage error; a bad one is named', () => {
  assert.throws(() => prepareLocal(input({ text: MSG })), UsageError);
  assert.throws(
    () => prepareLocal(input({ text: 'To: undisclosed-recipients:;\n\nx\n', fromHeaders: true })),
    UsageError,
  );
  assert.throws(
    () => prepareLocal(input({ text: MSG, recipients: ['a!b@dest.test'] })),
    /"a!b@dest\.test" is not a valid recipient/,
  );
});

test('stampLocal adds Message-ID, Date, Received and DKIM signatures in front', async () => {
  const m = prepareLocal(
    input({ text: 'From: i@example.test\nSubject: s\n\nhi\n', recipients: ['r@dest.test'] }),
  );
  const { privateKey } = generateKeyPairSync('ed25519');
  const key: DkimKey = {
    selector: 's1',
    algorithm: 'ed25519',
    file: 's1.ed25519.key',
    privateKey,
    pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  };
  const date = new Date('2026-01-02T03:04:05Z');
  const user = { uid: 33, name: 'www-data' };
  const out = await stampLocal(m, {
    hostname: 'mail.example.test',
    queueId: 'Q1',
    date,
    keys: [key],
    user,
  });
  const text = out.data.toString();
  assert.match(out.messageId ?? '', /^<.+@example\.test>$/);
  assert.match(text, /^DKIM-Signature: .*d=example\.test/);
  assert.match(
    text,
    /\r\nReceived: by mail\.example\.test \(posta, from userid 33 www-data\)\r\n\tid Q1; Fri, 02 Jan 2026 03:04:05 \+0000\r\n/,
  );
  assert.match(
    text,
    /\r\nMessage-ID: <.+@example\.test>\r\nDate: Fri, 02 Jan 2026 03:04:05 \+0000\r\nFrom: i@example\.test\r\n/,
  );

  const kept = prepareLocal(
    input({
      text: 'From: i@example.test\nDate: Thu, 1 Jan 2026 00:00:00 +0000\nMessage-ID: <own@x>\n\nhi\n',
      recipients: ['r@dest.test'],
    }),
  );
  const again = await stampLocal(kept, {
    hostname: 'mail.example.test',
    queueId: 'Q2',
    date,
    keys: [],
    user: { uid: 1000, name: undefined },
  });
  assert.equal(again.messageId, '<own@x>');
  assert.match(again.data.toString(), /^Received: by .* \(posta, from userid 1000\)\r\n/);
  assert.match(again.data.toString(), /^Received: [^]*\r\nFrom: i@example\.test\r\nDate: Thu/);
});

test('a From field made from a non-ASCII -f is UTF-8', () => {
  const m = prepareLocal(
    input({
      text: 'Subject: x\n\nx\n',
      sender: 'jürgen@example.test',
      recipients: ['x@dest.test'],
    }),
  );
  assert.equal(m.sender, 'jürgen@example.test');
  assert.ok(
    m.data.includes(Buffer.from('From: <jürgen@example.test>\r\n', 'utf8')),
    m.data.toString(),
  );
});
