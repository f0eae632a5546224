/**
 * What posta reads from and adds to a message's header (RFC 5322): the From
 * addresses, the Message-ID, and the fix-ups of submission (RFC 6409 §8):
 * Message-ID and Date when missing, and the trace Received field (RFC 5321
 * §4.4). Headers are only ever prepended, never rewritten, so signatures of
 * earlier hops stay valid.
 */
import { randomBytes } from 'node:crypto';
import { Headers } from 'mailsplit';
import addressparser from 'nodemailer/lib/addressparser';

export interface HeaderInfo {
  /** Every address of every From field. */
  from: string[];
  /** How many From fields there are. */
  fromFields: number;
  messageId: string | undefined;
  hasDate: boolean;
  /** The first Subject, unfolded, as written (encoded words are not decoded). */
  subject: string | undefined;
}

/** The header block: everything before the first empty line. */
export function headerBlock(data: Buffer): Buffer {
  const end = data.indexOf('\r\n\r\n');
  return end < 0 ? data : data.subarray(0, end + 2);
}

export function readHeader(data: Buffer): HeaderInfo {
  const h = new Headers(headerBlock(data));
  const fromFields = h.get('from');
  const from = fromFields.flatMap((line) =>
    flatten(addressparser(line.replace(/^from:/i, ''), { flatten: true })),
  );
  const mid = h
    .get('message-id')[0]
    ?.replace(/^message-id:/i, '')
    .trim();
  const subject = h
    .get('subject')[0]
    ?.replace(/^subject:/i, '')
    .replace(/\r?\n/g, '')
    .trim();
  return {
    from,
    fromFields: fromFields.length,
    messageId: mid || undefined,
    hasDate: h.hasHeader('date'),
    subject,
  };
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
