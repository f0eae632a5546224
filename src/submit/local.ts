/**
 * Local submission: a message that a program on this machine hands to
 * `posta sendmail` on standard input (cron, PHP's mail(), scripts), made
 * ready for the queue as Postfix's postdrop and cleanup would. Pure: the
 * caller reads the input, loads the keys and writes the spool.
 *
 * The input, as sendmail(8) reads it:
 * - Lines end in LF, CRLF or a lone CR; all become CRLF (RFC 5322 §2.1), so
 *   nothing posta relays has a bare line ending. A NUL byte is refused.
 * - Without -i (or -oi), a line holding only "." ends the message; nothing
 *   else is special and no dot is unstuffed.
 * - A leading mbox "From " line is dropped. The header ends at the first
 *   empty line, or at the first line that is not a header field, before which
 *   the empty line is put.
 *
 * The envelope:
 * - Recipients: those on the command line, plus with -t every address of the
 *   To, Cc and Bcc fields (Postfix's reading of -t). An address without a
 *   domain gets the first local domain, as Postfix's myorigin gives.
 * - Bcc fields are always removed from the message (RFC 5322 §3.6.3), by
 *   stampMessage, as for SMTP submission.
 * - Sender: -f, else the first From address, else postmaster@ the first local
 *   domain; it must be an address of a local domain, so `posta sendmail` can
 *   send only as this server's domains, as an account can.
 * - From and Sender are read strictly, as SMTP submission reads them
 *   (message/originator.ts): each one unambiguous mailbox, or "root" alone
 *   as cron writes it; a Sender field must name a local domain.
 * - A missing From field is added with the sender (and -F's full name);
 *   Date and Message-ID are added when missing (RFC 6409 §8), a Received
 *   field naming the submitting user always, then the DKIM signatures of the
 *   From domain.
 * - A line longer than 998 octets is refused (RFC 5322 §2.1.1), as SMTP
 *   submission refuses it.
 */
import addressparser from 'nodemailer/lib/addressparser';
import { domainOf, parseAddress, parseDomain } from '../address/address.ts';
import { PostaError, UsageError } from '../errors.ts';
import { readHeader } from '../message/header.ts';
import { readOriginator } from '../message/originator.ts';
import { longLine, longLineText } from '../message/lines.ts';
import { stampMessage } from '../message/stamp.ts';
import { split } from '../message/held.ts';
import type { DkimKey } from '../dkim/keys.ts';
import type { LocalUser } from './maildrop.ts';

export interface LocalInput {
  /** The message as read from standard input (see findDotLine for where it ends). */
  data: Buffer;
  /** -t: take recipients from the To, Cc and Bcc fields as well. */
  fromHeaders: boolean;
  /** Recipients given on the command line. */
  recipients: readonly string[];
  /** -f: the envelope sender. */
  sender?: string | undefined;
  /** -F: the full name for a From field posta adds. */
  fullName?: string | undefined;
  /** The local domains (A-labels); the first qualifies bare names. */
  domains: readonly string[];
}

export interface LocalMessage {
  sender: string;
  recipients: string[];
  /** The message: CRLF, From added when missing (stampLocal removes Bcc). */
  data: Buffer;
  /** The domain of the first From address, normalised; undefined when it has none. */
  fromDomain: string | undefined;
}

/**
 * Where the message ends in what has been read so far: `at` is the start of
 * a lone "." line (sendmail without -i), or `resume` is where to look again
 * once more input arrived. At `eof`, a "." without a line end counts too.
 */
export function findDotLine(
  buf: Buffer,
  start: number,
  eof: boolean,
): { at: number } | { resume: number } {
  let i = start;
  for (;;) {
    const nl = buf.indexOf(10, i);
    if (nl < 0) {
      const rest = buf.subarray(i);
      const lone = rest.length === 1 || (rest.length === 2 && rest[1] === 13);
      return eof && lone && rest[0] === 46 ? { at: i } : { resume: i };
    }
    const line = buf.subarray(i, nl > i && buf[nl - 1] === 13 ? nl - 1 : nl);
    if (line.length === 1 && line[0] === 46) return { at: i };
    i = nl + 1;
  }
}

/** Every line end (LF, CRLF, lone CR) as CRLF, and a final CRLF; latin1 keeps bytes as they are. */
export function toCrlf(data: Buffer): string {
  if (data.includes(0)) {
    throw new PostaError(
      'The message contains a NUL byte, which mail cannot carry; encode binary content (base64) first.',
    );
  }
  const text = data.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return text === '' || text.endsWith('\r\n') ? text : `${text}\r\n`;
}

/** The header fields (each with its folded lines and CRLF) and the body after the empty line. */
export function splitMessage(text: string): { fields: string[]; body: string } {
  const lines = text.split('\r\n');
  lines.pop(); // after the final CRLF
  let i = 0;
  if (lines[0]?.startsWith('From ')) i++; // an mbox separator, not a field
  const fields: string[] = [];
  for (; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line === '') {
      i++;
      break;
    }
    if (/^[ \t]/.test(line) && fields.length > 0) {
      fields[fields.length - 1] += `${line}\r\n`;
    } else if (/^[\x21-\x39\x3b-\x7e]+[ \t]*:/.test(line)) {
      // RFC 5322 §4.5.5: a name with spaces before the colon is a field too.
      fields.push(`${line}\r\n`);
    } else {
      break; // not a field: the body starts here, without the empty line
    }
  }
  const rest = lines.slice(i);
  return { fields, body: rest.length ? `${rest.join('\r\n')}\r\n` : '' };
}

/** A header field's name, lower-cased (the field as splitMessage gives it). */
export function fieldName(field: string): string {
  return field.slice(0, field.indexOf(':')).trim().toLowerCase();
}

/** Every address in fields named `names`; header bytes are taken as UTF-8 (RFC 6532). */
export function fieldAddresses(fields: readonly string[], names: readonly string[]): string[] {
  const out: string[] = [];
  for (const f of fields) {
    if (!names.includes(fieldName(f))) continue;
    const value = Buffer.from(f.slice(f.indexOf(':') + 1), 'latin1')
      .toString('utf8')
      .replace(/\r\n/g, '');
    out.push(...listAddresses(value));
  }
  return out;
}

/** The addresses of an address list; a bare name (cron's "root") counts as an address. */
export function listAddresses(value: string): string[] {
  return addressparser(value, { flatten: true })
    .map((a) => (a.address ?? '').trim() || (/^[^\s<>"@]+$/.test(a.name) ? a.name : ''))
    .filter((a) => a !== '');
}

/**
 * The normal form of an envelope address, as submission stores it: the domain
 * as a lower-case A-label, and for local domains the local part too; a bare
 * name, or one @localhost, gets `defaultDomain`. Null when it is not a
 * usable address.
 */
export function normaliseAddress(
  input: string,
  domains: readonly string[],
  defaultDomain: string | undefined,
): string | null {
  let address = input.trim().replace(/^<(.*)>$/, '$1');
  // cron's MAILTO=root@localhost means this machine, as a bare name does.
  if (/@localhost\.?$/i.test(address)) address = address.slice(0, address.lastIndexOf('@'));
  if (!address.includes('@')) {
    if (!defaultDomain) return null;
    address = `${address}@${defaultDomain}`;
  }
  const at = address.lastIndexOf('@');
  const local = address.slice(0, at);
  // Sender-specified routing is never honoured (RFC 5321 §3.6.1).
  if (local === '' || /[%!@\s]/.test(local)) return null;
  const domain = parseDomain(address.slice(at + 1));
  if (!domain.ok) return null;
  if (!domains.includes(domain.value)) return `${local}@${domain.value}`;
  const a = parseAddress(`${local}@${domain.value}`);
  return a.ok ? `${a.value.local}@${a.value.domain}` : null;
}

/** Envelope and header of a locally submitted message; errors are one sentence. */
export function prepareLocal(input: LocalInput): LocalMessage {
  const first = input.domains[0];
  if (first === undefined) {
    throw new PostaError(
      'The config folder has no domain to send from; add one with `posta init DOMAIN`.',
    );
  }
  const { fields, body } = splitMessage(toCrlf(input.data));

  const recipients: string[] = [];
  const given = [
    ...input.recipients.flatMap(listAddresses),
    ...(input.fromHeaders ? fieldAddresses(fields, ['to', 'cc', 'bcc']) : []),
  ];
  for (const r of given) {
    const norm = normaliseAddress(r, input.domains, first);
    if (norm === null) {
      throw new PostaError(`"${r}" is not a valid recipient address; fix it and send again.`);
    }
    if (!recipients.includes(norm)) recipients.push(norm);
  }
  if (recipients.length === 0) {
    throw new UsageError(
      input.fromHeaders
        ? 'The message has no recipients: its To, Cc and Bcc fields are empty and none were given; see `posta sendmail --help`.'
        : 'No recipients: give them as arguments, or use -t to take them from the To, Cc and Bcc fields; see `posta sendmail --help`.',
    );
  }

  const from = originator(fields, input.domains, first);
  const wanted = input.sender ?? from[0] ?? `postmaster@${first}`;
  const sender = normaliseAddress(wanted, input.domains, first);
  if (sender === null || !input.domains.includes(domainOf(sender))) {
    throw new PostaError(
      `The sender <${wanted}> is not an address of this server's domains (${input.domains.join(', ')}); give one of them with -f or in the From field.`,
    );
  }

  const fromField = from.length ? '' : `From: ${displayName(input.fullName)}<${sender}>\r\n`;
  const firstFrom =
    from[0] === undefined ? sender : normaliseAddress(from[0], input.domains, first);
  // The fields and body are the bytes read (latin1 keeps them); the From field
  // made here holds -f's address, a string, which goes out as UTF-8 (RFC 6532).
  const data = Buffer.concat([
    Buffer.from(fromField, 'utf8'),
    Buffer.from(`${fields.join('')}\r\n${body}`, 'latin1'),
  ]);
  const long = longLine(data);
  if (long) {
    throw new PostaError(`${longLineText(long)}.`);
  }
  return {
    sender,
    recipients,
    data,
    fromDomain: firstFrom === null ? undefined : domainOf(firstFrom),
  };
}

/**
 * The From addresses, read strictly (message/originator.ts) as for SMTP
 * submission, but a bare "root" (cron) is an address and From may be
 * missing; a Sender must be an address of a local domain.
 */
function originator(fields: readonly string[], domains: readonly string[], first: string) {
  const r = readOriginator(Buffer.from(fields.join(''), 'latin1'), {
    bareLocal: true,
    fromOptional: true,
  });
  if (!r.ok) throw new PostaError(`${r.problem}.`);
  const { sender } = r.value;
  if (sender) {
    const norm = normaliseAddress(sender.address, domains, first);
    if (norm === null || !domains.includes(domainOf(norm))) {
      throw new PostaError(
        `The Sender field <${sender.address}> is not an address of this server's domains (${domains.join(', ')}); use one of them or remove the field.`,
      );
    }
  }
  return r.value.from.map((m) => m.address);
}

/** A display name before <addr>: quoted when ASCII, an encoded word (RFC 2047) when not. */
export function displayName(name: string | undefined): string {
  if (!name) return '';
  if (/^[\x20-\x7e]*$/.test(name)) return `"${name.replace(/(["\\])/g, '\\$1')}" `;
  return `=?UTF-8?B?${Buffer.from(name, 'utf8').toString('base64')}?= `;
}

export interface StampOptions {
  hostname: string;
  queueId: string;
  date: Date;
  /** DKIM keys of the From domain when it is local; [] signs nothing. */
  keys: readonly DkimKey[];
  /** Who submitted it (maildrop.ts). */
  user: LocalUser;
}

/** What submission adds (message/stamp.ts), with a Received field naming the local user. */
export async function stampLocal(
  m: LocalMessage,
  o: StampOptions,
): Promise<{ data: Buffer; messageId: string | undefined }> {
  const { message, messageId } = await stampMessage(split(m.data), {
    header: readHeader(m.data),
    complete: true,
    fromDomain: m.fromDomain,
    keys: o.keys,
    trace: {
      helo: 'localhost',
      clientIp: '127.0.0.1',
      hostname: o.hostname,
      protocol: 'local',
      tls: undefined,
      queueId: o.queueId,
      date: o.date,
      userid: o.user.name === undefined ? `${o.user.uid}` : `${o.user.uid} ${o.user.name}`,
    },
  });
  return { data: Buffer.concat([message.head, message.body as Buffer]), messageId };
}
