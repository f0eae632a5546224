/**
 * The originator fields of mail from posta's own senders (SMTP submission,
 * `posta sendmail`), read strictly before posta signs for them: who the
 * message says it is from must mean the same to posta's sender check as to
 * every reader after it (RFC 5322 §3.6.2).
 *
 * - From: exactly one field, of mailboxes that each read unambiguously
 *   (mailbox.ts); several mailboxes need a Sender (RFC 5322 §3.6.2).
 * - Sender: at most one field, of exactly one such mailbox.
 * - A field name with spaces before its colon (`From : x`, RFC 5322 §4.5.5
 *   obs-optional) is refused for From, Sender and Reply-To: dkimpy and
 *   Python's email take it as one more of that field, mailsplit as a field
 *   with another name, so one message would have one From to posta and two
 *   to them.
 * - A header line that is neither a field nor a folded continuation is
 *   refused: readers disagree on where such a header ends.
 * - Field values are UTF-8 (RFC 6532 §3); invalid UTF-8 is refused.
 *
 * Pure: the header block in, the mailboxes or one problem sentence out.
 */
import { strictMailboxes, type Mailbox } from './mailbox.ts';

export interface Originator {
  from: Mailbox[];
  sender: Mailbox | undefined;
}

export type OriginatorResult = { ok: true; value: Originator } | { ok: false; problem: string };

export interface OriginatorOptions {
  /** Accept From: root (local submission; cron). */
  bareLocal?: boolean;
  /** A missing From is fine (local submission adds one). */
  fromOptional?: boolean;
}

const ORIGINATOR = ['from', 'sender', 'reply-to'];
const DISPLAY: Record<string, string> = { from: 'From', sender: 'Sender', 'reply-to': 'Reply-To' };
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The header fields of `block` (each value unfolded) by lower-case name; a problem sentence when it is not a plain header. */
export function headerFields(block: Buffer): Map<string, Buffer[]> | string {
  const fields = new Map<string, string[][]>();
  const lines = block.toString('latin1').split('\r\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let current: string[] | undefined;
  for (const [n, line] of lines.entries()) {
    if (/^[ \t]/.test(line)) {
      if (!current) return 'The header starts with a folded line; it must start with a field';
      current.push(line); // RFC 5322 §2.2.3: unfolding removes the CRLF only
      continue;
    }
    const m = /^([\x21-\x39\x3b-\x7e]+)([ \t]*):/.exec(line);
    if (!m) return `Line ${n + 1} of the header is not a field (Name: value)`;
    const name = (m[1] ?? '').toLowerCase();
    if (m[2] && ORIGINATOR.includes(name)) {
      const d = DISPLAY[name] ?? name;
      return `The ${d} field name is followed by a space before the colon ("${d} :"), which some readers count as a second ${d} field; write "${d}:"`;
    }
    current = [line.slice(m[0].length)];
    fields.set(name, [...(fields.get(name) ?? []), current]);
  }
  const out = new Map<string, Buffer[]>();
  for (const [name, list] of fields) {
    out.set(
      name,
      list.map((l) => Buffer.from(l.join(''), 'latin1')),
    );
  }
  return out;
}

export function readOriginator(block: Buffer, o: OriginatorOptions = {}): OriginatorResult {
  const fail = (problem: string): OriginatorResult => ({ ok: false, problem });
  const fields = headerFields(block);
  if (typeof fields === 'string') return fail(fields);
  const froms = fields.get('from') ?? [];
  const senders = fields.get('sender') ?? [];
  if (froms.length === 0 && !o.fromOptional) {
    return fail('The message has no From field; add one mailbox like From: Name <you@example.com>');
  }
  if (froms.length > 1) {
    return fail(`The message must have exactly one From field; it has ${froms.length}`);
  }
  if (senders.length > 1) {
    return fail(`The message must have at most one Sender field; it has ${senders.length}`);
  }
  const from =
    froms[0] === undefined ? { ok: true as const, mailboxes: [] } : parse(froms[0], 'From', o);
  if (!from.ok) return fail(from.problem);
  let sender: Mailbox | undefined;
  if (senders[0] !== undefined) {
    const s = parse(senders[0], 'Sender', o);
    if (!s.ok) return fail(s.problem);
    if (s.mailboxes.length !== 1) {
      return fail(`The Sender field must be one mailbox; it has ${s.mailboxes.length}`);
    }
    sender = s.mailboxes[0];
  }
  if (from.mailboxes.length > 1 && sender === undefined) {
    // RFC 5322 §3.6.2
    return fail(
      `The From field has ${from.mailboxes.length} mailboxes, so the message needs a Sender field naming the one who sends it (RFC 5322 section 3.6.2)`,
    );
  }
  return { ok: true, value: { from: from.mailboxes, sender } };
}

function parse(value: Buffer, field: string, o: OriginatorOptions) {
  let text: string;
  try {
    text = utf8.decode(value);
  } catch {
    return { ok: false as const, problem: `The ${field} field is not valid UTF-8 (RFC 6532)` };
  }
  return strictMailboxes(text, { field, bareLocal: o.bareLocal });
}
