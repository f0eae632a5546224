/**
 * Complaints: an Abuse Reporting Format report (RFC 5965) that arrives on
 * port 25 for one of posta's domains, from a mailbox provider's feedback
 * loop (Yahoo's, say) or a receiver who forwards it. The report is a
 * multipart/report; report-type=feedback-report whose second part
 * (message/feedback-report) says the Feedback-Type and Original-Rcpt-To and
 * whose third part (message/rfc822, or text/rfc822-headers) is the mail
 * complained about: posta finds its own Received field there ("by HOSTNAME
 * (posta) ... id QUEUEID") and so the message it sent.
 *
 * A report counts only when it names a message of posta's senders and a
 * recipient that message went to (the reported one, or its only recipient),
 * and comes from a verified sender (SPF, or aligned DKIM, on port 25) of the
 * recipient's own Organizational Domain (complaints.ts): anyone can mail an
 * ARF report, but only one who holds a copy of the mail knows its queue id,
 * and only the recipient's provider may speak for the recipient. Then the recipient gets a Complaint event and joins the
 * suppression list of the sending domain with reason COMPLAINT. The report is
 * delivered on like any other mail to its address.
 *
 * mailsplit splits the MIME structure (the embedded message is kept whole);
 * the parts' fields are read here.
 */
import type { Readable } from 'node:stream';
import { Headers, Splitter } from 'mailsplit';
import addressparser from 'nodemailer/lib/addressparser';

export interface FeedbackReport {
  feedbackType: string;
  userAgent: string | undefined;
  arrivalDate: string | undefined;
  /** Original-Rcpt-To addresses, lower-cased. */
  recipients: string[];
  /** The header section of the reported message. */
  original: Buffer;
}

/** Does the header say multipart/report; report-type=feedback-report? */
export function looksLikeFeedbackReport(head: Buffer): boolean {
  // most mail is no report: a plain search before any parsing
  if (!/feedback-report/i.test(head.toString('latin1'))) return false;
  const type = new Headers(head).get('content-type').join(' ').replace(/\r?\n/g, ' ');
  return (
    /^content-type:\s*multipart\/report\b/i.test(type) &&
    /report-type\s*=\s*"?feedback-report\b/i.test(type)
  );
}

/** The report's parts, or null when it is not a well-formed ARF report. */
export async function readFeedbackReport(message: Readable): Promise<FeedbackReport | null> {
  const parts: { type: string; encoding: string; body: Buffer[] }[] = [];
  const splitter = new Splitter({ ignoreEmbedded: true, maxHeadSize: 64 * 1024 });
  let current: (typeof parts)[number] | undefined;
  splitter.on('data', (d: SplitterData) => {
    if (d.type === 'node') {
      current = { type: String(d.contentType || ''), encoding: String(d.encoding || ''), body: [] };
      parts.push(current);
    } else if (d.type === 'body' && current && d.value) {
      // only the small parts are kept: the report fields and the original
      if (current.type !== 'text/plain' || parts.length > 2) current.body.push(d.value);
    }
  });
  await new Promise<void>((resolve, reject) => {
    splitter.on('end', resolve).on('error', reject);
    message.on('error', reject).pipe(splitter);
  });
  const decode = (p: (typeof parts)[number]) => {
    const raw = Buffer.concat(p.body);
    return p.encoding === 'base64' ? Buffer.from(raw.toString('latin1'), 'base64') : raw;
  };
  const report = parts.find((p) => p.type === 'message/feedback-report');
  const original = parts.find(
    (p) => p.type === 'message/rfc822' || p.type === 'text/rfc822-headers',
  );
  if (!report || !original) return null;
  const fields = new Headers(decode(report));
  const one = (name: string) =>
    fields
      .get(name)[0]
      ?.replace(/^[^:]*:\s*/, '')
      .replace(/\r?\n/g, '')
      .trim();
  const recipients = fields
    .get('original-rcpt-to')
    .flatMap((line) =>
      addressparser(line.replace(/^[^:]*:\s*/, ''), { flatten: true }).map((a) =>
        (a.address ?? '').toLowerCase(),
      ),
    )
    .filter(Boolean);
  const body = decode(original);
  const end = body.indexOf('\r\n\r\n');
  return {
    feedbackType: (one('feedback-type') ?? 'abuse').toLowerCase(),
    userAgent: one('user-agent'),
    arrivalDate: one('arrival-date') ?? one('received-date'),
    recipients,
    original: end < 0 ? body : body.subarray(0, end + 2),
  };
}

/** The queue id in posta's own Received field of the reported message, for `hostname`. */
export function ourQueueId(original: Buffer, hostname: string): string | undefined {
  const text = original.toString('latin1').replace(/\r?\n[ \t]+/g, ' ');
  const host = hostname.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const m = new RegExp(
    `^Received:[^\\r\\n]*\\bby ${host} \\(posta[^)]*\\)[^;\\r\\n]*?\\bid ([0-9a-z]{18})\\b`,
    'im',
  ).exec(text);
  return m?.[1];
}

interface SplitterData {
  type: 'node' | 'data' | 'body';
  value?: Buffer;
  contentType?: string | false;
  encoding?: string | false;
}
