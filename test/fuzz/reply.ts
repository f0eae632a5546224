/**
 * What a well-formed SMTP reply is (RFC 5321 §4.2): every line "ddd" then "-"
 * or " " (the last one " "), one code for all lines; and posta puts an
 * enhanced status code (RFC 2034, RFC 3463) of the same class first on every
 * reply except those RFC 2034 exempts: the greeting and the answer to
 * EHLO/HELO, plus 354 and 334, which are not a command's outcome.
 */
import assert from 'node:assert/strict';
import type { Reply } from '../helpers/smtp.ts';

export function assertWellFormed(r: Reply, opts: { exempt?: boolean } = {}): void {
  const lines = r.raw.split('\r\n').slice(0, -1);
  assert.ok(lines.length > 0, `empty reply: ${JSON.stringify(r.raw)}`);
  for (const [i, line] of lines.entries()) {
    const last = i === lines.length - 1;
    assert.match(line, last ? /^\d{3}( |$)/ : /^\d{3}-/, `line ${i + 1}: ${JSON.stringify(r.raw)}`);
    assert.equal(line.slice(0, 3), String(r.code), `one code: ${JSON.stringify(r.raw)}`);
  }
  assert.ok(r.code >= 200 && r.code < 600, `code ${r.code}`);
  if (opts.exempt || r.code === 354 || r.code === 334) return;
  const m = /^([245])\.\d{1,3}\.\d{1,3}( |$)/.exec(r.lines[0] ?? '');
  assert.ok(m, `no enhanced status code: ${JSON.stringify(r.raw)}`);
  assert.equal(m[1], String(r.code)[0], `enhanced class matches: ${JSON.stringify(r.raw)}`);
}
