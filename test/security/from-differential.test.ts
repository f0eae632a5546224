/**
 * A differential property test of posta's strict From reading
 * (src/message/mailbox.ts) against Python's email package: From values are
 * built by fast-check from tricky pieces (quotes, encoded words, @ < > , ; :,
 * groups, comments, no-break and other spaces, dots), and for every value
 * posta accepts, Python's headerregistry (email.policy.default) and
 * email.utils.getaddresses must read exactly the same addresses, and so
 * must nodemailer's addressparser (which the rest of posta reads with). All values
 * of a run go to one Python process. FUZZ_RUNS sets how many (default 400);
 * FUZZ_SEED repeats a run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import addressparser from 'nodemailer/lib/addressparser';
import { strictMailboxes } from '../../src/message/mailbox.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

/** `good` three times as often as `tricky`. */
const mostly = <T>(good: fc.Arbitrary<T>, tricky: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: good, weight: 3 }, { arbitrary: tricky, weight: 1 });

const ws = mostly(
  fc.constantFrom(' ', '', '  ', '\t'),
  fc.constantFrom('\u00a0', '\u2003', '\u3000'),
);
const word = mostly(
  fc.constantFrom(
    'boss',
    'Jo',
    'J.',
    'a.b',
    'Zoë',
    "O'Brien",
    '"x@y"',
    '"boss@bank.test"',
    '"a\\"b"',
    '"a,b <c@d.test>"',
    '"(not a comment)"',
    '=?utf-8?q?boss=40bank=2Etest?=',
    '=?utf-8?b?Ym9zc0BiYW5rLnRlc3Q=?=',
    '=?utf-8?q?J=C3=BCrgen?=',
  ),
  fc.constantFrom(
    '.x',
    'x=?y',
    '"',
    '"\u00a0"',
    '"=?utf-8?q?a?="',
    '=?utf-8?q?a,<b@c.test>?=',
    '=?utf-8?q?a?=b',
    '=?utf-8?q?a b?=',
    'a\\b',
  ),
);
const address = mostly(
  fc.constantFrom(
    'i@example.com',
    'boss@bank.test',
    'a.b@example.com',
    'jürgen@bücher.test',
    "o'b+x@example.com",
  ),
  fc.constantFrom(
    '"i"@example.com',
    '=?utf-8?q?i?=@example.com',
    'i@=?utf-8?q?example.com?=',
    'i@[127.0.0.1]',
    'i@example.com.',
    '.i@example.com',
    'i..j@example.com',
    'i@@example.com',
    'i @example.com',
    'i(c)@example.com',
    '@a.test:i@example.com',
    '',
  ),
);
const comment = mostly(
  fc.constantFrom('(c)', '(boss@bank.test)', '(a (b) c)', '(\\))', '("x")'),
  fc.constantFrom('(', ')', '(\u00a0)', '(a\\'),
);
const special = fc.constantFrom('@', '<', '>', ',', ':', ';', '.', '[', ']', '\\', '"', 'g:', '()');
const piece = fc.oneof(
  word,
  address,
  comment,
  special,
  ws,
  address.map((a) => `<${a}>`),
);

/** A mailbox that is nearly right: [name] [ws] <address> [ws comment], with a piece sometimes put anywhere. */
const mailbox = fc
  .tuple(
    fc.array(fc.tuple(word, ws), { maxLength: 3 }),
    ws,
    address,
    fc.boolean(),
    ws,
    fc.option(comment),
  )
  .map(([name, sp, a, angle, sp2, c]) => {
    const display = name.map(([w, s]) => w + s).join('');
    return `${display}${sp}${angle || display ? `<${a}>` : a}${sp2}${c ?? ''}`;
  });
const value = fc.oneof(
  fc.array(piece, { minLength: 1, maxLength: 8 }).map((p) => p.join('')),
  { arbitrary: mailbox, weight: 3 },
  fc.tuple(mailbox, piece, fc.nat(40)).map(([m, p, at]) => {
    const i = at % (m.length + 1);
    return m.slice(0, i) + p + m.slice(i);
  }),
  fc.array(mailbox, { minLength: 2, maxLength: 3 }).map((m) => m.join(', ')),
);

const PYTHON = `
import email, email.policy, email.utils, json, sys
out = []
for v in json.load(sys.stdin):
    r = {}
    try:
        msg = email.message_from_string('From: ' + v + '\\r\\n\\r\\nx\\r\\n', policy=email.policy.default)
        r['registry'] = [a.username + '@' + a.domain for a in msg['From'].addresses]
    except Exception as e:
        r['registry'] = 'error: %r' % e
    r['getaddresses'] = [a for _, a in email.utils.getaddresses([v])]
    out.append(r)
json.dump(out, sys.stdout)
`;

test(`Python's email reads every From posta accepts as the same addresses (${RUNS} values, seed ${SEED})`, (t) => {
  const values = fc.sample(value, { numRuns: RUNS, seed: SEED });
  const accepted = values.flatMap((v) => {
    const r = strictMailboxes(v, { field: 'From' });
    return r.ok ? [{ v, addresses: r.mailboxes.map((m) => m.address) }] : [];
  });
  const out = execFileSync('/usr/bin/python3', ['-c', PYTHON], {
    input: JSON.stringify(accepted.map((a) => a.v)),
  });
  const python = JSON.parse(out.toString()) as {
    registry: string[] | string;
    getaddresses: string[];
  }[];
  const differ = accepted.filter((a, i) => {
    const p = python[i];
    const nodemailer = addressparser(a.v, { flatten: true }).map((m) => m.address);
    return (
      JSON.stringify(nodemailer) !== JSON.stringify(a.addresses) ||
      JSON.stringify(p?.registry) !== JSON.stringify(a.addresses) ||
      JSON.stringify(p?.getaddresses) !== JSON.stringify(a.addresses)
    );
  });
  assert.deepEqual(
    differ.map((d) => ({ ...d, python: python[accepted.indexOf(d)] })),
    [],
    `posta and Python read these differently (FUZZ_SEED=${SEED})`,
  );
  t.diagnostic(`${accepted.length} of ${RUNS} values accepted`);
  // The generator is worth something only if it reaches both sides.
  assert.ok(accepted.length > RUNS / 20, `only ${accepted.length} of ${RUNS} values were accepted`);
  assert.ok(accepted.length < RUNS, 'every value was accepted');
});
