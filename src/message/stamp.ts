/**
 * What posta puts on top of a message before it queues it, in this order
 * from the bottom up (and the one thing it takes away):
 * - for mail from its own senders (submission, sendmail), the Bcc fields are
 *   removed (RFC 5322 §3.6.3), before anything is signed;
 * - for mail from its own senders (submission, sendmail), Message-ID and Date
 *   when missing (RFC 6409 §8);
 * - the Received trace field (RFC 5321 §4.4);
 * - for those senders, the DKIM signatures of the From domain on top of it all.
 * Nothing else in the message is changed, and mail from other servers is
 * never touched, so earlier signatures stay valid.
 */
import type { Signer } from '../dkim/pool.ts';
import type { Held } from './held.ts';
import type { DkimKey } from '../dkim/keys.ts';
import {
  newMessageId,
  receivedField,
  rfc5322Date,
  withoutBcc,
  type HeaderInfo,
  type Trace,
} from './header.ts';

export interface Stamp {
  /** The header of `data` as readHeader read it. */
  header: HeaderInfo;
  trace: Trace;
  /** Remove Bcc, add Message-ID and Date when missing: true for posta's own senders. */
  complete: boolean;
  /** The From domain, when it is one of ours; its keys sign. */
  fromDomain?: string;
  keys: readonly DkimKey[];
  /** Who computes the signatures: the worker threads (dkim/pool.ts); by default this thread. */
  sign?: Signer;
}

/** Signing on this thread (posta sendmail), loaded when first used. */
const inThread: Signer = async (message, domain, keys, now) =>
  (await import('../dkim/sign.ts')).signMessage(message, domain, keys, now);

/** Only the header changes; the body, in memory or in a file, is left as it is. */
export async function stampMessage(
  message: Held,
  s: Stamp,
): Promise<{ message: Held; messageId: string | undefined }> {
  let prefix = '';
  let messageId = s.header.messageId;
  let head = message.head;
  if (s.complete) {
    head = withoutBcc(head);
    if (!messageId) {
      messageId = newMessageId(s.fromDomain ?? s.trace.hostname);
      prefix += `Message-ID: ${messageId}\r\n`;
    }
    if (!s.header.hasDate) prefix += `Date: ${rfc5322Date(s.trace.date)}\r\n`;
  }
  let out: Held = {
    head: Buffer.concat([Buffer.from(receivedField(s.trace) + prefix), head]),
    body: message.body,
  };
  if (s.fromDomain && s.keys.length) {
    const signatures = await (s.sign ?? inThread)(out, s.fromDomain, s.keys, s.trace.date);
    out = { head: Buffer.concat([Buffer.from(signatures), out.head]), body: out.body };
  }
  return { message: out, messageId };
}
