/**
 * Delivery status notifications (RFC 3464): the bounce a sender gets when a
 * recipient failed for good or the message expired, and the optional warning
 * that a message is delayed.
 *
 * A DSN is a multipart/report (RFC 6522) of three parts: a text a person can
 * read, quoting each remote server's reply; the machine-readable
 * message/delivery-status; and the original message's header
 * (text/rfc822-headers; the body is not returned). It is sent from the null
 * sender (RFC 5321 §4.5.5) with Auto-Submitted: auto-replied (RFC 3834), and
 * never to the null sender, so bounces cannot loop. nodemailer's MimeNode
 * builds the MIME structure; the scheduler puts a Received field on top and
 * signs it with the From domain's keys, Auto-Submitted among the signed
 * fields. Its SPF is checked at the HELO name (RFC 7208 §2.3), which is why
 * `posta dns` publishes an SPF record for the hostname.
 */
import MimeNode from 'nodemailer/lib/mime-node';
import { headerBlock, readHeader, rfc5322Date } from '../message/header.ts';

export interface FailedRecipient {
  address: string;
  /** RFC 3463 status, e.g. "5.1.1" or "4.4.7". */
  status: string;
  /** The reply that decided it, as "550 5.1.1 text". */
  reply: string;
  /** The server that gave the reply, when one did. */
  remoteMta?: string;
  lastAttempt: Date;
}

export interface DsnInput {
  action: 'failed' | 'delayed';
  /** Our hostname: the Reporting-MTA. */
  hostname: string;
  /** The domain of the From address (MAILER-DAEMON@domain), one of ours. */
  fromDomain: string;
  /** The original envelope sender, who gets the report. */
  to: string;
  queueId: string;
  arrival: Date;
  original: Buffer;
  recipients: FailedRecipient[];
}

export async function buildDsn(d: DsnInput): Promise<Buffer> {
  const root = new MimeNode('multipart/report; report-type=delivery-status');
  const header = headerBlock(d.original).toString('utf8');
  const subject = readHeader(d.original).subject ?? '';
  root.setHeader({
    From: `Mail Delivery System <MAILER-DAEMON@${d.fromDomain}>`,
    To: `<${d.to}>`,
    Subject:
      d.action === 'failed'
        ? `Undelivered Mail Returned to Sender${subject ? `: ${subject}` : ''}`
        : `Delayed Mail (still being retried)${subject ? `: ${subject}` : ''}`,
    'Auto-Submitted': 'auto-replied',
  });
  root.messageId(); // RFC 5322 §3.6.4: a Message-ID, in our own domain
  root.createChild('text/plain; charset=utf-8').setContent(humanText(d));
  root.createChild('message/delivery-status').setContent(deliveryStatus(d));
  // RFC 6522 §1: the header as it was; 7bit (or 8bit) keeps it readable, lines are below 998.
  root
    .createChild('text/rfc822-headers')
    .setHeader('Content-Transfer-Encoding', /[^\t\r\n\x20-\x7e]/.test(header) ? '8bit' : '7bit')
    .setContent(header);
  const built = await root.build();
  return Buffer.from(built);
}

function humanText(d: DsnInput): string {
  const lines = [`This is the mail system at ${d.hostname}.`, ''];
  if (d.action === 'failed') {
    lines.push(
      'Your message could not be delivered to one or more recipients. It has been',
      'returned below (headers only). The reply of the receiving server says why:',
    );
  } else {
    lines.push(
      'Your message has not been delivered yet to one or more recipients. It stays',
      'in the queue and delivery is retried; you need not send it again:',
    );
  }
  for (const r of d.recipients) {
    lines.push(
      '',
      `<${r.address}>:`,
      `    ${r.remoteMta ? `${r.remoteMta} said: ` : ''}${r.reply}`,
    );
  }
  return lines.join('\r\n') + '\r\n';
}

/** RFC 3464 §2.2 and §2.3. */
function deliveryStatus(d: DsnInput): string {
  const fields = [
    `Reporting-MTA: dns; ${d.hostname}`,
    `X-Posta-Queue-ID: ${d.queueId}`,
    `Arrival-Date: ${rfc5322Date(d.arrival)}`,
  ];
  const blocks = [fields.join('\r\n')];
  for (const r of d.recipients) {
    const f = [
      `Final-Recipient: rfc822; ${r.address}`,
      `Action: ${d.action}`,
      `Status: ${r.status}`,
    ];
    if (r.remoteMta) f.push(`Remote-MTA: dns; ${r.remoteMta}`);
    f.push(`Diagnostic-Code: smtp; ${r.reply.replace(/[\r\n]+/g, ' ')}`);
    f.push(`Last-Attempt-Date: ${rfc5322Date(r.lastAttempt)}`);
    blocks.push(f.join('\r\n'));
  }
  return blocks.join('\r\n\r\n') + '\r\n';
}
