/**
 * What posta reads from and adds to a message's header (RFC 5322): the From
 * addresses, the Message-ID, and the fix-ups of submission (RFC 6409 §8):
 * Message-ID and Date when missing, and the trace Received field (RFC 5321
 * §4.4). Headers are only ever prepended, never rewritten, so signatures of
 * earlier hops stay valid; the one removal is Bcc, from mail of posta's own
 * senders before it is signed.
 *
 * Header bytes are UTF-8 (RFC 6532 §3): a From of "jürgen@example.com" reads
 * as that address, and such a header needs SMTPUTF8 on the next hop.
 */
import { randomBytes } from 'node:crypto';
import { Headers } from 'mailsplit';
import addressparser from 'nodemailer/lib/addressparser';

export interface HeaderInfo {
  /**
   * Every address of every From field, read leniently (for display, as in
   * `posta queue show`); the strict reading posta signs by is originator.ts.
   */
  from: string[];
  messageId: string | undefined;
  hasDate: boolean;
  /** The first Subject, unfolded, as written (encoded words are not decoded). */
  subject: string | undefined;
}

/** The header block: everything before the first empty line (none when the message starts with it). */
export function headerBlock(data: Buffer): Buffer {
  if (data[0] === 13 && data[1] === 10) return data.subarray(0, 0);
  const end = data.indexOf('\r\n\r\n');
  return end < 0 ? data : data.subarray(0, end + 2);
}

/** A field as mailsplit gives it (one byte a char) read as UTF-8 (RFC 6532 §3.2). */
function utf8(line: string): string {
  return Buffer.from(line, 'latin1').toString('utf8');
}

export function readHeader(data: Buffer): HeaderInfo {
  const h = new Headers(headerBlock(data));
  const fromFields = h.get('from').map(utf8);
  const from = fromFields.flatMap((line) =>
    flatten(addressparser(line.replace(/^from:/i, ''), { flatten: true })),
  );
  const mid = h
    .get('message-id')
    .map(utf8)[0]
    ?.replace(/^message-id:/i, '')
    .trim();
  const subject = h
    .get('subject')
    .map(utf8)[0]
    ?.replace(/^subject:/i, '')
    .replace(/\r?\n/g, '')
    .trim();
  return {
    from,
    messageId: mid || undefined,
    hasDate: h.hasHeader('date'),
    subject,
  };
}

/**
 * The message without its Bcc fields (RFC 5322 §3.6.3): submission removes
 * them, as Postfix's cleanup and Gmail do, so no recipient sees the blind
 * copies; the envelope keeps their recipients.
 */
export function withoutBcc(data: Buffer): Buffer {
  const end = data.indexOf('\r\n\r\n');
  const h = new Headers(headerBlock(data));
  if (!h.hasHeader('bcc')) return data;
  h.remove('bcc');
  // build() ends the header with the empty line.
  return Buffer.concat([h.build(), end < 0 ? Buffer.alloc(0) : data.subarray(end + 4)]);
}

/** Non-ASCII bytes in the header section: UTF-8 header fields (RFC 6532), which need SMTPUTF8. */
export function utf8Header(data: Buffer): boolean {
  return headerBlock(data).some((b) => b > 0x7f);
}

function flatten(list: { address?: string }[]): string[] {
  return list.map((a) => (a.address ?? '').trim()).filter((a) => a !== '');
}

/** RFC 5322 §3.3 date-time, in UTC. */
export function rfc5322Date(d: Date): string {
  const day = d.toUTCString().slice(0, 3);
  const [, dd, mon, yyyy, time] = d.toUTCString().split(' ');
  return `${day}, ${dd} ${mon} ${yyyy} ${time} +0000`;
}

export function newMessageId(domain: string): string {
  return `<${Date.now().toString(36)}.${randomBytes(9).toString('base64url')}@${domain}>`;
}

export interface Trace {
  helo: string;
  clientIp: string;
  hostname: string;
  /** "ESMTP", "ESMTPS", "ESMTPA" or "ESMTPSA" (RFC 3848). */
  protocol: string;
  tls: string | undefined;
  queueId: string;
  date: Date;
  /** A local submission: the user's "UID NAME" instead of the from clause. */
  userid?: string;
}

/**
 * The trace field of a message posta wrote itself (a DSN): no SMTP client,
 * so only the by and id clauses (RFC 5321 §4.4), as Postfix writes its own.
 */
export function generatedReceivedField(hostname: string, queueId: string, date: Date): string {
  return `Received: by ${hostname} (posta) id ${queueId};\r\n\t${rfc5322Date(date)}\r\n`;
}

export function receivedField(t: Trace): string {
  if (t.userid !== undefined) {
    // RFC 5322 §3.6.7: a local user is no SMTP client; named as Postfix names it.
    return (
      `Received: by ${t.hostname} (posta, from userid ${t.userid})\r\n` +
      `\tid ${t.queueId}; ${rfc5322Date(t.date)}\r\n`
    );
  }
  const tls = t.tls ? ` (${t.tls})` : '';
  return (
    `Received: from ${t.helo} ([${t.clientIp}])\r\n` +
    `\tby ${t.hostname} (posta) with ${t.protocol}${tls} id ${t.queueId};\r\n` +
    `\t${rfc5322Date(t.date)}\r\n`
  );
}
