/**
 * The strict reading of a mailbox-list (RFC 5322 §3.4) that posta applies to
 * the From and Sender fields of its own senders' mail, before it signs them.
 *
 * Why posta's own and not a library's: every parser at hand (nodemailer's
 * addressparser, mailparser, Python's email, dkimpy's, the mail clients')
 * recovers from broken input, and each recovers differently, so one field can
 * name one address to posta's sender check and another to the reader. For
 * `boss@bank.test <i@example.com>` addressparser gives i@example.com and
 * Python's email gives boss@bank.test; none of them refuses. So this reads
 * only the plain grammar, with no obsolete forms and no recovery, and refuses
 * anything else with a sentence that names the problem:
 *
 *   mailbox-list = mailbox *("," mailbox)
 *   mailbox      = name-addr / addr-spec
 *   name-addr    = [phrase] "<" addr-spec ">"       ; nothing inside the <> but the address
 *   addr-spec    = dot-atom "@" dot-atom            ; no quoted local part, no [domain literal]
 *   phrase       = word *(word / "." / CFWS)        ; word = atom / quoted-string (RFC 5322 §3.2.5)
 *
 * with CFWS (spaces, tabs, nested comments) between the pieces. So an unquoted
 * @ < > , ; : [ ] \ in a display name, a group (`name: ...;`), an empty field,
 * `<>`, a name with no address, and an address only inside an encoded word
 * (RFC 2047) are all refused. Encoded words may stand only as whole words of
 * the display name (RFC 2047 §5(3)): Python decodes them in quoted strings and
 * local parts too, so `=?` anywhere else is refused. Characters are UTF-8
 * (RFC 6532 §3.2), but no control character and no space other than SP and
 * HTAB anywhere in the field: a no-break space looks like a space to a person
 * and to Python's str.strip(), and is a letter to the grammar.
 *
 * Pure: the field value in, the mailboxes (as written) or the problem out.
 */

export interface Mailbox {
  /** The display name as written (quotes, encoded words and comments kept); '' when none. */
  name: string;
  /** local@domain as written. */
  address: string;
}

export type Mailboxes = { ok: true; mailboxes: Mailbox[] } | { ok: false; problem: string };

export interface StrictOptions {
  /** "From" or "Sender": named in the problem sentences. */
  field: string;
  /**
   * Accept an address without a domain ("root"), as cron writes `From: root
   * (Cron Daemon)`: local submission gives it the default domain.
   */
  bareLocal?: boolean;
}

type Token =
  | { kind: 'atom'; text: string } // atext and dots
  | { kind: 'quoted'; text: string } // with its quotes
  | { kind: 'space' } // FWS or comments
  | { kind: 'special'; text: string };

// RFC 5322 §3.2.3 atext, plus any non-ASCII character but spaces (RFC 6532 §3.2).
const ATEXT = /[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]|[^\p{ASCII}]/u;
// Controls (except HTAB) and every space but SP and HTAB (no-break, ideographic, line separator, ...).
const FORBIDDEN = /[^\P{Cc}\t]|[^\S \t]/u;
const DOT_ATOM = /^[^.]+(?:\.[^.]+)*$/;
// RFC 2047 §2 encoded-word, with no space inside; in a phrase its text is atext (§5(3)).
const ENCODED_WORD = /^=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=$/;
const EXAMPLE = 'Name <you@example.com>';

export function strictMailboxes(value: string, o: StrictOptions): Mailboxes {
  const fail = (problem: string): Mailboxes => ({
    ok: false,
    problem: `The ${o.field} ${problem}`,
  });
  const bad = FORBIDDEN.exec(value);
  if (bad) {
    const c = bad[0];
    const what = c === '\u00a0' ? 'a no-break space' : `the character U+${hex(c)}`;
    return fail(
      `field contains ${what}; use plain spaces, and write it as one mailbox like ${EXAMPLE}`,
    );
  }
  const tokens = tokenize(value);
  if (typeof tokens === 'string') return fail(tokens);
  const solid = tokens.filter((t) => t.kind !== 'space');
  if (solid.length === 0) return fail(`field is empty; it must be one mailbox like ${EXAMPLE}`);
  const group = solid.find((t) => t.kind === 'special' && (t.text === ':' || t.text === ';'));
  if (group) {
    return fail(`field is a group (name: addresses;); it must be one mailbox like ${EXAMPLE}`);
  }
  const mailboxes: Mailbox[] = [];
  let i = 0;
  for (;;) {
    const m = mailbox(tokens, i, o);
    if (typeof m === 'string') return fail(m);
    mailboxes.push(m.mailbox);
    i = skipSpace(tokens, m.next);
    if (i >= tokens.length) return { ok: true, mailboxes };
    const t = tokens[i];
    if (t?.kind !== 'special' || t.text !== ',') {
      return fail(
        `field has ${describe(t)} after the address <${m.mailbox.address}>; it must be one mailbox like ${EXAMPLE}`,
      );
    }
    i++;
  }
}

/** One mailbox from token `start` on; a problem sentence (after "The From ") when there is none. */
function mailbox(
  tokens: Token[],
  start: number,
  o: StrictOptions,
): { mailbox: Mailbox; next: number } | string {
  const first = skipSpace(tokens, start);
  // addr-spec: atom "@" atom, nothing between them.
  const [a, at, d] = [tokens[first], tokens[first + 1], tokens[first + 2]];
  if (a?.kind === 'atom' && at?.kind === 'special' && at.text === '@') {
    const address = addrSpec(a, d);
    if (typeof address === 'string') return address;
    const after = tokens[skipSpace(tokens, first + 3)];
    if (after !== undefined && !(after.kind === 'special' && after.text === ',')) {
      return `field has an unquoted "@" in its display name; put the name in double quotes, like "Name" <you@example.com>`;
    }
    return { mailbox: { name: '', address: address.text }, next: first + 3 };
  }
  // name-addr: [phrase] "<" addr-spec ">".
  const words: string[] = [];
  let i = first;
  for (; i < tokens.length; i++) {
    const t = tokens[i] as Token;
    if (t.kind === 'space') {
      words.push(' ');
      continue;
    }
    if (t.kind === 'special') break;
    if (t.kind === 'atom' && !phraseAtom(t.text, words.length === 0)) {
      return `field's display name has "${t.text}", which is not a word of a name; put the name in double quotes, like "Name" <you@example.com>`;
    }
    if (t.kind === 'quoted' && t.text.includes('=?')) {
      return 'field has an encoded word (=?...?=) inside quotes, which readers decode differently; write it without the quotes';
    }
    words.push(t.text);
  }
  const t = tokens[i];
  const name = words.join('').trim();
  if (t === undefined || (t.kind === 'special' && t.text === ',')) {
    // cron's "root (Cron Daemon)": one atom, the local part alone.
    const solid = tokens.slice(first, i).filter((x) => x.kind !== 'space');
    const bare = solid[0];
    if (o.bareLocal && solid.length === 1 && bare?.kind === 'atom' && isLocalPart(bare.text)) {
      return { mailbox: { name: '', address: bare.text }, next: i };
    }
    return `field has no address, only a name; it must be one mailbox like ${EXAMPLE}`;
  }
  const last = tokens[i - 1];
  if (t.kind === 'special' && t.text === '<' && last?.kind === 'atom' && last.text.endsWith('.')) {
    // Python's email fails on "J.<you@example.com>".
    return `field's display name ends in "." right before "<"; put the name in double quotes, like "J. Name" <you@example.com>`;
  }
  if (t.kind !== 'special' || t.text !== '<') {
    const what = t.kind === 'special' ? `an unquoted "${t.text}"` : describe(t);
    return `field has ${what} in its display name; put the name in double quotes, like "Name" <you@example.com>`;
  }
  const [l, at2, dom, close] = [tokens[i + 1], tokens[i + 2], tokens[i + 3], tokens[i + 4]];
  if (l?.kind === 'special' && l.text === '>') {
    return `field has the empty address <>; it must be one mailbox like ${EXAMPLE}`;
  }
  const ok =
    l?.kind === 'atom' &&
    at2?.kind === 'special' &&
    at2.text === '@' &&
    close?.kind === 'special' &&
    close.text === '>';
  if (!ok) {
    return `field's address between < and > is not a plain address like you@example.com`;
  }
  const address = addrSpec(l, dom);
  if (typeof address === 'string') return address;
  return { mailbox: { name, address: address.text }, next: i + 5 };
}

/** local "@" domain, both dot-atoms without encoded words. */
function addrSpec(local: Token, domain: Token | undefined): { text: string } | string {
  if (local.kind !== 'atom' || domain?.kind !== 'atom') {
    return `field's address is not a plain address like you@example.com`;
  }
  if (!DOT_ATOM.test(local.text) || !DOT_ATOM.test(domain.text)) {
    return `address ${local.text}@${domain.kind === 'atom' ? domain.text : ''} has a misplaced dot`;
  }
  if (local.text.includes('=?') || domain.text.includes('=?')) {
    return 'address contains an encoded word (=?...?=), which readers decode differently; write the address plainly';
  }
  return { text: `${local.text}@${domain.text}` };
}

function isLocalPart(text: string): boolean {
  return DOT_ATOM.test(text) && !text.includes('=?');
}

/** An atom of a display name: a whole encoded word, or atext with dots after the first word (obs-phrase). */
function phraseAtom(text: string, first: boolean): boolean {
  if (text.includes('=?')) return ENCODED_WORD.test(text);
  return !(first && text.startsWith('.'));
}

function skipSpace(tokens: Token[], i: number): number {
  while (tokens[i]?.kind === 'space') i++;
  return i;
}

function describe(t: Token | undefined): string {
  if (t === undefined) return 'nothing';
  if (t.kind === 'special') return `an unquoted "${t.text}"`;
  return `"${t.kind === 'space' ? ' ' : t.text}"`;
}

function hex(c: string): string {
  return (c.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
}

/** The field value as tokens; a problem sentence when a quote or comment is not closed. */
function tokenize(v: string): Token[] | string {
  const out: Token[] = [];
  let i = 0;
  while (i < v.length) {
    const c = v[i] as string;
    if (c === ' ' || c === '\t' || c === '(') {
      const end = skipCfws(v, i);
      if (typeof end === 'string') return end;
      if (out[out.length - 1]?.kind !== 'space') out.push({ kind: 'space' });
      i = end;
    } else if (c === '"') {
      const end = quotedEnd(v, i);
      if (end < 0) return 'field has a quote (") that is not closed';
      out.push({ kind: 'quoted', text: v.slice(i, end) });
      i = end;
    } else if (ATEXT.test(c)) {
      let j = i;
      while (j < v.length && ATEXT.test(v[j] as string)) j++;
      out.push({ kind: 'atom', text: v.slice(i, j) });
      i = j;
    } else {
      if (c === ')') return 'field has a ")" that closes no comment';
      if (c === '\\') return 'field has a backslash outside quotes';
      out.push({ kind: 'special', text: c });
      i++;
    }
  }
  return out;
}

/** Past spaces and comments (RFC 5322 §3.2.2: nested, with quoted-pairs) from `i`. */
function skipCfws(v: string, i: number): number | string {
  let depth = 0;
  for (; i < v.length; i++) {
    const c = v[i];
    // Python's getaddresses takes a comma in a comment as a list separator; a
    // quoted-pair in a comment is read differently by different parsers.
    if (depth > 0 && (c === ',' || c === '\\')) {
      return `field has "${c}" inside a comment (...); remove it or put the text in a quoted display name`;
    } else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0 && c !== ' ' && c !== '\t') return i;
  }
  return depth > 0 ? 'field has a comment "(" that is not closed' : i;
}

/** The index after the closing quote of the quoted-string at `i`, or -1 (RFC 5322 §3.2.4). */
function quotedEnd(v: string, i: number): number {
  for (let j = i + 1; j < v.length; j++) {
    if (v[j] === '\\') j++;
    else if (v[j] === '"') return j + 1;
  }
  return -1;
}
