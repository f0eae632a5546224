/**
 * An ARF report (arf.ts) that arrived on port 25, turned into a Complaint
 * event (SES's shape: complainedRecipients, complaintFeedbackType,
 * feedbackId, timestamp, userAgent, arrivalDate) for the message posta sent,
 * and a COMPLAINT entry on the sending domain's suppression list.
 */
import { domainOf } from '../address/address.ts';
import type { Logger } from '../log/log.ts';
import { messageStream, type Held } from '../message/held.ts';
import type { Spool } from '../queue/spool.ts';
import { mailRecord } from './events.ts';
import { ourQueueId, readFeedbackReport } from './arf.ts';
import { getAlignment } from 'mailauth/lib/tools.js';
import type { SenderAuth } from '../verify/inbound.ts';

export interface ComplaintDeps {
  spool: Spool;
  hostname: string;
  log: Logger;
}

/** Who sent the report (the envelope sender) and what port 25's checks verified of it. */
export interface ReportSender {
  address: string;
  auth: SenderAuth | undefined;
}

/**
 * May this sender complain for `recipient`? Only a verified one (SPF, or
 * DKIM aligned with its domain) of the recipient's own Organizational Domain
 * (a mailbox provider's feedback loop, the recipient's own server), or a
 * feedback loop known to speak for that domain (FEEDBACK_LOOPS): a
 * co-recipient of the mail, who knows its queue id too, cannot suppress the
 * others.
 */
function mayReport(sender: ReportSender, recipient: string): boolean {
  const verified = sender.auth?.spf === 'pass' || sender.auth?.dkim === 'pass';
  if (!verified || !sender.address.includes('@')) return false;
  const reporter = domainOf(sender.address);
  const domain = domainOf(recipient).toLowerCase();
  if (getAlignment(domain, [reporter], false) !== false) return true;
  return FEEDBACK_LOOPS.some(
    (l) => getAlignment(reporter, [l.reporter], false) !== false && l.recipients.test(domain),
  );
}

/**
 * Feedback loops that speak for more than their own Organizational Domain:
 * Yahoo's Complaint Feedback Loop reports, from arf.mail.yahoo.com, what the
 * users of every mail brand Yahoo runs marked as spam, AOL's among them.
 */
const FEEDBACK_LOOPS: { reporter: string; recipients: RegExp }[] = [
  {
    reporter: 'yahoo.com',
    recipients:
      /^(?:yahoo\.[a-z]{2,3}(?:\.[a-z]{2})?|ymail\.com|rocketmail\.com|aol\.(?:com|co\.uk|de|fr)|aim\.com)$/,
  },
];

/** Reads `message`, a feedback report (looksLikeFeedbackReport), about posta's mail; never throws. */
export async function takeComplaint(
  deps: ComplaintDeps,
  message: Held,
  reportId: string,
  sender: ReportSender,
): Promise<void> {
  try {
    const report = await readFeedbackReport(messageStream(message));
    if (!report) {
      deps.log.info({ qid: reportId }, 'feedback report not read: no report or original part');
      return;
    }
    const id = ourQueueId(report.original, deps.hostname);
    const mail = id ? mailRecord(deps.spool.db, id) : undefined;
    if (!id || !mail) {
      deps.log.info({ qid: reportId, about: id }, 'feedback report about no message posta sent');
      return;
    }
    // addresses compare lower-cased: the queue keeps the local part as given
    const sent = mail.recipients.filter((r) => report.recipients.includes(r.toLowerCase()));
    const named =
      sent.length > 0
        ? sent
        : report.recipients.length === 0 && mail.recipients.length === 1
          ? mail.recipients
          : [];
    const recipients = named.filter((r) => mayReport(sender, r));
    if (named.length > 0 && recipients.length === 0) {
      deps.log.info(
        { qid: reportId, about: id, from: sender.address, auth: sender.auth },
        "feedback report not from a verified sender of the recipient's domain",
      );
      return;
    }
    if (recipients.length === 0) {
      deps.log.info(
        { qid: reportId, about: id },
        'feedback report names no recipient of that message',
      );
      return;
    }
    const now = Date.now();
    await deps.spool.recordEvents({
      events: [
        {
          message: id,
          type: 'Complaint',
          at: now,
          recipients,
          detail: {
            complainedRecipients: recipients.map((emailAddress) => ({ emailAddress })),
            complaintFeedbackType: report.feedbackType,
            feedbackId: `${reportId}-complaint`,
            timestamp: new Date(now).toISOString(),
            ...(report.userAgent ? { userAgent: report.userAgent } : {}),
            ...(report.arrivalDate ? { arrivalDate: report.arrivalDate } : {}),
          },
        },
      ],
      suppress: recipients.map((address) => ({
        domain: domainOf(mail.sender),
        address,
        reason: 'COMPLAINT' as const,
        message: id,
      })),
    });
    deps.log.info({ qid: reportId, about: id, rcpts: recipients }, 'complaint recorded');
  } catch (err) {
    deps.log.warn({ qid: reportId, err: (err as Error).message }, 'feedback report not read');
  }
}
