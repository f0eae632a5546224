/**
 * Bulk mail's header fields, put on a message from posta's own senders
 * (SMTP submission, the APIs) before it is signed, so the DKIM signatures
 * cover them (dkim/sign.ts puts List-Unsubscribe, List-Unsubscribe-Post and
 * Feedback-ID in h=):
 *
 * - One-click unsubscribe (RFC 8058) when the message asks for it
 *   ("X-Posta-Unsubscribe: one-click", or SES's ListManagementOptions,
 *   which api/send.ts keeps as the ses:contact-list tag) or its sending
 *   domain or access key is in [bulk] unsubscribe_domains/_keys, unless it
 *   says "X-Posta-Unsubscribe: none":
 *     List-Unsubscribe: <https://HOSTNAME/unsubscribe/TOKEN>,
 *       <mailto:unsubscribe+TOKEN@DOMAIN?subject=unsubscribe>
 *     List-Unsubscribe-Post: List-Unsubscribe=One-Click
 *   with the token of (From domain, recipient) (token.ts), recorded
 *   (links.ts). A token names one recipient, so only a message with one
 *   recipient can have it: a message that asked for it with more is
 *   refused (UnsubscribeError), one that the config switch alone covers is
 *   sent without. A message that already has List-Unsubscribe keeps the
 *   application's fields as they are. Without an https listener (an API or
 *   header request; the config switch needs one, config/load.ts), the
 *   mailto: alone, and no List-Unsubscribe-Post, which RFC 8058 §3.1 allows
 *   only beside an https URI.
 * - Feedback-ID (Gmail's "a:b:c:SenderId") when [bulk] feedback_id is set
 *   and the message has none: CAMPAIGN:KEY:TYPE:SENDERID, from the campaign
 *   tag, the access key id, the configuration set (else "bulk" for mail
 *   with the unsubscribe fields), and the setting.
 * - X-Posta-Unsubscribe itself is always removed.
 */
import { Headers } from 'mailsplit';
import type { Endpoint } from '../config/endpoint.ts';
import type { Logger } from '../log/log.ts';
import type { NewLink } from './links.ts';
import { unsubscribeToken } from './token.ts';

export const ASK_FIELD = 'x-posta-unsubscribe';
const ASK_TEXT = /^x-posta-unsubscribe\s*:/im;
/** The tags api/send.ts keeps SES's ListManagementOptions in. */
export const CONTACT_LIST_TAG = 'ses:contact-list';
export const TOPIC_TAG = 'ses:topic';

export interface BulkSettings {
  /** The base of the https URL ("https://mail.example.com"), or null with no https listener. */
  base: string | null;
  unsubscribeDomains: readonly string[];
  unsubscribeKeys: readonly string[];
  feedbackId: string;
}

/** The message asked for what it cannot have: for the API a bad request, for SMTP a 550. */
export class UnsubscribeError extends Error {
  readonly kind: 'recipients' | 'field';
  constructor(kind: 'recipients' | 'field', message: string) {
    super(message);
    this.kind = kind;
  }
}

export interface BulkMessage {
  /** The header section (the empty line included). */
  head: Buffer;
  /** The From domain, one of ours, whose suppression list the link feeds. */
  domain: string;
  recipients: readonly string[];
  keyId: string | undefined;
  tags: Readonly<Record<string, string[]>>;
}

/**
 * The header with the bulk fields (as it was when there is nothing to do),
 * and its unsubscribe link, which the spool records in the commit that
 * queues the message (Envelope.unsubscribe); throws UnsubscribeError.
 */
export type Bulk = (m: BulkMessage) => { head: Buffer; link: NewLink | undefined };

/** The https URL's base: the hostname, with the port when the listener's is not 443. */
export function httpsBase(hostname: string, https: readonly Endpoint[]): string | null {
  const first = https[0];
  if (!first) return null;
  return first.port === 443 ? `https://${hostname}` : `https://${hostname}:${first.port}`;
}

/** What a field's value is, unfolded. */
function valueOf(line: string): string {
  return line
    .slice(line.indexOf(':') + 1)
    .replace(/\r\n/g, '')
    .trim();
}

/** A Feedback-ID part: no ":" (the separator), nothing but visible ASCII, at most 64. */
function part(s: string | undefined): string {
  return (s ?? '').replace(/[^\x21-\x39\x3b-\x7e]/g, '').slice(0, 64);
}

export function createBulk(s: BulkSettings, secret: Buffer, log: Logger): Bulk {
  const anyConfigured =
    s.unsubscribeDomains.length > 0 || s.unsubscribeKeys.length > 0 || s.feedbackId !== '';
  return (m) => {
    // most mail asks for nothing: no header parse then
    if (
      !anyConfigured &&
      m.tags[CONTACT_LIST_TAG] === undefined &&
      !ASK_TEXT.test(m.head.toString('latin1'))
    ) {
      return { head: m.head, link: undefined };
    }
    const h = new Headers(m.head);
    const asks = h.get(ASK_FIELD).map((l) => valueOf(l).toLowerCase());
    if (asks.length) h.remove(ASK_FIELD);
    const bad = asks.find((a) => a !== 'one-click' && a !== 'none');
    if (bad !== undefined) {
      throw new UnsubscribeError(
        'field',
        `X-Posta-Unsubscribe is "${bad}"; it must be "one-click" or "none"`,
      );
    }
    const asked = asks.includes('one-click') || m.tags[CONTACT_LIST_TAG] !== undefined;
    const configured =
      s.unsubscribeDomains.includes(m.domain) ||
      (m.keyId !== undefined && s.unsubscribeKeys.includes(m.keyId));
    let add = '';
    let listed = false;
    let link: NewLink | undefined;
    if (!asks.includes('none') && (asked || configured) && !h.get('list-unsubscribe').length) {
      const [rcpt, ...more] = m.recipients;
      if (rcpt === undefined || more.length) {
        if (asked) {
          throw new UnsubscribeError(
            'recipients',
            `One-click unsubscribe needs one recipient per message, and this one has ${m.recipients.length}; send each recipient a message of its own`,
          );
        }
        log.info({ rcpts: m.recipients.length }, 'no List-Unsubscribe: not one recipient');
      } else {
        const token = unsubscribeToken(secret, m.domain, rcpt);
        link = { token, domain: m.domain, address: rcpt };
        if (!s.base)
          log.warn({ rcpt }, 'List-Unsubscribe without one-click: [listen] https is empty');
        const mailto = `<mailto:unsubscribe+${token}@${m.domain}?subject=unsubscribe>`;
        // RFC 8058 §3.1: an https URI, and List-Unsubscribe-Post beside it
        add += s.base
          ? `List-Unsubscribe: <${s.base}/unsubscribe/${token}>,\r\n ${mailto}\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n`
          : `List-Unsubscribe: ${mailto}\r\n`;
        listed = true;
      }
    }
    if (s.feedbackId && !h.get('feedback-id').length) {
      const type = m.tags['ses:configuration-set']?.[0] ?? (listed ? 'bulk' : '');
      const parts = [m.tags.campaign?.[0], m.keyId, type, s.feedbackId].map(part);
      add += `Feedback-ID: ${parts.join(':')}\r\n`;
    }
    if (!add && !asks.length) return { head: m.head, link };
    const head = Buffer.concat([Buffer.from(add, 'latin1'), asks.length ? h.build() : m.head]);
    return { head, link };
  };
}
