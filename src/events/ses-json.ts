/**
 * An event as SES publishes it (research/ses-api.md §4.2): `eventType`, the
 * `mail` object (from mail_log: timestamp, messageId, source, destination,
 * headers, commonHeaders, tags) and the event's own object named after its
 * type in lower camel case (bounce, delivery, deliveryDelay, send, ...).
 * `posta events --json` prints it; webhooks send it.
 */
import type { Db } from '../db/db.ts';
import { mailRecord, type StoredEvent } from './events.ts';

/** The event as SES publishes it (research/ses-api.md §4.2). */
export function sesEvent(db: Db, e: StoredEvent): Record<string, unknown> {
  const m = mailRecord(db, e.message);
  const field = e.type.charAt(0).toLowerCase() + e.type.slice(1);
  const header = (name: string) =>
    m?.headers.filter((h) => h.name.toLowerCase() === name).map((h) => h.value) ?? [];
  return {
    eventType: e.type,
    mail: {
      timestamp: new Date(m?.createdAt ?? e.at).toISOString(),
      messageId: e.message,
      source: m?.sender ?? '',
      destination: m?.recipients ?? e.recipients,
      headersTruncated: m?.headersTruncated ?? false,
      headers: m?.headers ?? [],
      commonHeaders: {
        from: header('from'),
        to: header('to'),
        messageId: header('message-id')[0],
        subject: header('subject')[0],
      },
      tags: m?.tags ?? {},
      ...(m?.apiKey ? { sendingAccountId: m.apiKey } : {}),
    },
    [field]: e.detail,
  };
}
