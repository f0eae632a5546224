/**
 * The Resend email object of GET /emails/{id}, as far as posta knows it:
 * from mail_log (the header fields and recipients of each message posta's
 * senders sent, events/events.ts) and the message's last event. posta keeps
 * no copy of a body once it is delivered, so html and text are null; bcc
 * is the envelope's recipients that no To or Cc field names.
 *
 * last_event: Send → sent, Delivery → delivered, DeliveryDelay →
 * delivery_delayed, Bounce → bounced (suppressed when posta's suppression
 * list kept it from being sent), Complaint → complained;
 * queued before any event. The email is found only with the key it was
 * sent with.
 */
import addressparser from 'nodemailer/lib/addressparser';
import type { Db } from '../db/db.ts';
import { listEvents, mailRecord, type StoredEvent } from '../events/events.ts';
import type { ApiKey } from '../keys/keys.ts';
import { ApiError } from './errors.ts';

export function emailObject(db: Db, key: ApiKey, id: string): Record<string, unknown> {
  const m = mailRecord(db, id);
  if (!m || m.apiKey !== key.id) throw new ApiError('not-found', 'Email not found.');
  const field = (name: string) =>
    m.headers.filter((h) => h.name.toLowerCase() === name).map((h) => decodeWords(h.value));
  const [to, cc, replyTo] = [field('to'), field('cc'), field('reply-to')].map(mailboxes);
  const named = new Set([...(to ?? []), ...(cc ?? [])].map((a) => addressOf(a).toLowerCase()));
  const bcc = m.recipients.filter((r) => !named.has(r.toLowerCase()));
  const events = listEvents(db, { message: id });
  return {
    object: 'email',
    id,
    to: to ?? [],
    from: field('from')[0] ?? m.sender,
    created_at: new Date(m.createdAt).toISOString(),
    subject: field('subject')[0] ?? '',
    html: null,
    text: null,
    bcc: bcc.length ? bcc : null,
    cc,
    reply_to: replyTo,
    last_event: lastEvent(events[events.length - 1]),
    scheduled_at: null,
    tags: Object.entries(m.tags).flatMap(([name, values]) =>
      values.map((value) => ({ name, value })),
    ),
    message_id: field('message-id')[0] ?? null,
  };
}

function lastEvent(e: StoredEvent | undefined): string {
  switch (e?.type) {
    case undefined:
      return 'queued';
    case 'Send':
      return 'sent';
    case 'Delivery':
      return 'delivered';
    case 'DeliveryDelay':
      return 'delivery_delayed';
    case 'Bounce':
      return e.detail.bounceSubType === 'OnAccountSuppressionList' ? 'suppressed' : 'bounced';
    case 'Complaint':
      return 'complained';
    case 'Subscription':
      // Resend has no such state: the message was delivered, and its reader unsubscribed
      return 'delivered';
  }
}

/** The mailboxes of address fields, as "Name <a@b>" or "a@b"; null when there is no field. */
function mailboxes(values: string[]): string[] | null {
  if (values.length === 0) return null;
  return addressparser(values.join(', '), { flatten: true }).map((a) =>
    a.name ? `${a.name} <${a.address}>` : a.address,
  );
}

function addressOf(mailbox: string): string {
  const m = /<([^>]*)>$/.exec(mailbox);
  return m?.[1] ?? mailbox;
}

/**
 * The encoded words of a header field decoded (RFC 2047 §4); the space
 * between two adjacent ones goes (§6.2). An unknown charset is read as
 * Latin-1.
 */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, '$1')
    .replace(
      /=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g,
      (_, charset: string, enc: string, text: string) => {
        const bytes =
          enc.toUpperCase() === 'B'
            ? Buffer.from(text, 'base64')
            : Buffer.from(
                text
                  .replace(/_/g, ' ')
                  .replace(/=([0-9A-Fa-f]{2})/g, (_h, hex: string) =>
                    String.fromCharCode(parseInt(hex, 16)),
                  ),
                'latin1',
              );
        // RFC 2231 §5: a language may follow the charset after "*"
        const name = charset.split('*')[0] ?? '';
        try {
          return new TextDecoder(name).decode(bytes);
        } catch {
          return bytes.toString('latin1');
        }
      },
    );
}
