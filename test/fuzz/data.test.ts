/**
 * The DATA reader against a reference: a body of random lines with random
 * line ends (mostly CRLF; bare CR, bare LF, NUL, lines around the 998-octet
 * limit), sent to a real `posta serve` on port 25 in random chunk splits.
 * posta must accept it (250, stored byte for byte) exactly when the reference
 * finds no bare CR, bare LF, NUL or long line, and refuse it with 5xx
 * otherwise; and `longLine` must agree with the reference on any buffer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { setImmediate as tick } from 'node:timers/promises';
import { longLine, MAX_LINE_OCTETS } from '../../src/message/lines.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp, addCatchAll, queued } from '../helpers/smtp.ts';
import { assertWellFormed } from './reply.ts';
import { budget } from './budget.ts';

/** The reference: the first line over the limit, by splitting on LF and dropping one CR before it. */
function refLongLine(data: Buffer): { line: number; length: number } | null {
  const parts = data.toString('latin1').split('\n');
  for (const [i, part] of parts.entries()) {
    const followedByLf = i < parts.length - 1;
    if (!followedByLf && part === '') break;
    const length = followedByLf && part.endsWith('\r') ? part.length - 1 : part.length;
    if (length > MAX_LINE_OCTETS) return { line: i + 1, length };
  }
  return null;
}

/** The reference: what SMTP does not allow in DATA (RFC 5321 §2.3.8, §4.1.4). */
function refProblem(body: string): 'nul' | 'bare' | 'long' | null {
  if (body.includes('\0')) return 'nul';
  if (/\r(?!\n)|(?<!\r)\n/.test(body)) return 'bare';
  if (refLongLine(Buffer.from(body, 'latin1'))) return 'long';
  return null;
}

const text = fc.string({
  unit: fc.constantFrom(...'abcdefghij KLMNOP.:;-=\t0123456789'.split('')),
  maxLength: 60,
});
const line = fc.oneof(
  { weight: 8, arbitrary: text },
  { weight: 1, arbitrary: fc.integer({ min: 990, max: 1010 }).map((n) => 'x'.repeat(n)) },
  { weight: 1, arbitrary: fc.constantFrom('.', '..', '.x', '') },
);
const ending = fc.oneof(
  { weight: 20, arbitrary: fc.constant('\r\n') },
  { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\0', '\r\r\n', '\r\0\n', '\n\r') },
);
const bodyArb = fc
  .array(fc.tuple(line, ending), { minLength: 1, maxLength: 12 })
  .map((ls) => ls.map(([l, e]) => l + e).join(''));

test('longLine agrees with the reference on any buffer', () => {
  const chunk = fc.oneof(
    fc.constantFrom('\r', '\n', '\r\n', 'a'),
    fc.integer({ min: 0, max: 1100 }).map((n) => 'y'.repeat(n)),
  );
  fc.assert(
    fc.property(fc.array(chunk, { maxLength: 10 }), (parts) => {
      const data = Buffer.from(parts.join(''), 'latin1');
      assert.deepEqual(longLine(data), refLongLine(data));
    }),
    budget(100),
  );
});

let s: TestServer;
before(async () => {
  s = await startServer();
  await addCatchAll(s);
});
after(() => s.stop());

/** `bytes` in the given split points, each piece its own write. */
async function writeSplit(c: RawSmtp, bytes: Buffer, cuts: number[]): Promise<void> {
  const points = [...new Set(cuts.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  for (const p of [...points, bytes.length]) {
    if (p <= from) continue;
    c.write(bytes.subarray(from, p));
    from = p;
    await tick();
  }
}

test('DATA over the wire, in random chunks: accepted exactly when the reference finds nothing', async () => {
  await fc.assert(
    fc.asyncProperty(bodyArb, fc.array(fc.nat(), { maxLength: 8 }), async (body, cuts) => {
      const c = await RawSmtp.connect(s.host, s.ports.smtp);
      c.socket.setNoDelay(true);
      try {
        assert.equal((await c.reply()).code, 220);
        assert.equal((await c.cmd('EHLO fuzz.test')).code, 250);
        assert.equal((await c.cmd('MAIL FROM:<fuzz@elsewhere.example>')).code, 250);
        assert.equal((await c.cmd('RCPT TO:<user@example.test>')).code, 250);
        assert.equal((await c.cmd('DATA')).code, 354);
        const message = `From: fuzz@elsewhere.example\r\nSubject: fuzz\r\n\r\n${body}`;
        // Dot-stuffing (RFC 5321 §4.5.2) of the lines as a CRLF reader sees them.
        const stuffed = message.replace(/(^|\r\n)\./g, '$1..');
        const wire = Buffer.from(`${stuffed}${body.endsWith('\r\n') ? '' : '\r\n'}.\r\n`, 'latin1');
        await writeSplit(c, wire, cuts);
        const end = await c.reply(20_000);
        assertWellFormed(end);
        const sent = message + (body.endsWith('\r\n') ? '' : '\r\n');
        const problem = refProblem(sent);
        if (problem) {
          assert.ok(end.code >= 500 && end.code < 600, `${problem}: must be refused: ${end.raw}`);
        } else {
          assert.equal(end.code, 250, `clean: must be accepted: ${end.raw}`);
          const row = await queued(s.dir, end.raw);
          assert.ok(
            row.data.endsWith(sent),
            `stored byte for byte: ${JSON.stringify(row.data.slice(-200))}`,
          );
        }
      } finally {
        c.close();
      }
    }),
    budget(60),
  );
});
