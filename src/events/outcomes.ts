/**
 * Delivery outcomes as SES events (research/ses-api.md §4.2): pure, from the
 * attempts the scheduler records, in the same commit.
 *
 * - delivered: Delivery {timestamp, processingTimeMillis, recipients,
 *   smtpResponse, reportingMTA, remoteMtaIp};
 * - deferred: DeliveryDelay {delayType, expirationTime, delayedRecipients};
 * - failed for good: Bounce Permanent (General, NoEmail for X.1.x,
 *   OnAccountSuppressionList when posta did not try); a refusal SES counts as
 *   soft (mailbox full, too large, content) is Bounce Transient with that
 *   subtype, and so is giving up after the queue lifetime (General);
 * - an address whose permanent failure says it is bad is suppressed
 *   (suppression.ts) for the sending domain.
 */
import type { Attempt } from '../queue/spool.ts';
import { suppressesAddress, type SuppressionReason } from '../suppression/suppression.ts';
import type { NewEvent } from './events.ts';

export interface OutcomeContext {
  message: string;
  createdAt: number;
  /** The sending domain (of the envelope sender), whose suppression list a hard bounce joins. */
  domain: string;
  hostname: string;
  expiresAt: number;
  /** Recipients failed because they were on the suppression list (not tried). */
  suppressed: ReadonlySet<string>;
}

export interface OutcomeWrites {
  events: NewEvent[];
  suppress: { domain: string; address: string; reason: SuppressionReason; message: string }[];
}

/** "550 5.1.1 text" → "5.1.1"; the class digit of the code when there is no enhanced code. */
export function enhancedOf(reply: string): string {
  const m = /^(\d)\d\d[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(reply);
  if (m?.[2]) return m[2];
  const c = /^(\d)/.exec(reply)?.[1];
  return c === '5' ? '5.0.0' : '4.0.0';
}

function bounceKind(enhanced: string): { bounceType: string; bounceSubType: string } {
  if (/^5\.1\./.test(enhanced) && enhanced !== '5.1.7' && enhanced !== '5.1.8') {
    return { bounceType: 'Permanent', bounceSubType: 'NoEmail' };
  }
  if (/^[45]\.2\.2$/.test(enhanced))
    return { bounceType: 'Transient', bounceSubType: 'MailboxFull' };
  if (/^[45]\.(3\.4|2\.3)$/.test(enhanced)) {
    return { bounceType: 'Transient', bounceSubType: 'MessageTooLarge' };
  }
  if (/^5\.7\./.test(enhanced) || /^5\.6\./.test(enhanced)) {
    return { bounceType: 'Transient', bounceSubType: 'ContentRejected' };
  }
  return { bounceType: 'Permanent', bounceSubType: 'General' };
}

/** SES's delayType for a deferral. */
function delayType(a: Attempt, enhanced: string): string {
  if (/^4\.2\.2$/.test(enhanced)) return 'MailboxFull';
  if (/^4\.4\.[1-7]$/.test(enhanced) || a.ip === undefined) return 'TransientCommunicationFailure';
  if (/^4\.7\./.test(enhanced)) return 'SpamDetected';
  return 'RecipientServerError';
}

export function outcomeWrites(c: OutcomeContext, attempts: readonly Attempt[]): OutcomeWrites {
  const out: OutcomeWrites = { events: [], suppress: [] };
  for (const a of attempts) {
    const timestamp = new Date(a.at).toISOString();
    const enhanced = enhancedOf(a.reply);
    const base = { message: c.message, at: a.at, recipients: [a.recipient] };
    if (a.outcome === 'delivered') {
      out.events.push({
        ...base,
        type: 'Delivery',
        detail: {
          timestamp,
          processingTimeMillis: a.at - c.createdAt,
          recipients: [a.recipient],
          smtpResponse: a.reply,
          reportingMTA: c.hostname,
          ...(a.ip ? { remoteMtaIp: a.ip } : {}),
        },
      });
      continue;
    }
    const recipient = {
      emailAddress: a.recipient,
      status: enhanced,
      diagnosticCode: `smtp; ${a.reply}`,
    };
    if (a.outcome === 'transient') {
      out.events.push({
        ...base,
        type: 'DeliveryDelay',
        detail: {
          timestamp,
          delayType: delayType(a, enhanced),
          expirationTime: new Date(c.expiresAt).toISOString(),
          delayedRecipients: [recipient],
          reportingMTA: `dsn; ${c.hostname}`,
        },
      });
      continue;
    }
    const wasSuppressed = c.suppressed.has(a.recipient);
    const kind = wasSuppressed
      ? { bounceType: 'Permanent', bounceSubType: 'OnAccountSuppressionList' }
      : a.outcome === 'expired'
        ? { bounceType: 'Transient', bounceSubType: 'General' }
        : bounceKind(enhanced);
    out.events.push({
      ...base,
      type: 'Bounce',
      detail: {
        ...kind,
        bouncedRecipients: [{ ...recipient, action: 'failed' }],
        timestamp,
        feedbackId: `${c.message}-${a.at.toString(36)}`,
        reportingMTA: `dsn; ${c.hostname}`,
        ...(a.ip ? { remoteMtaIp: a.ip } : {}),
      },
    });
    if (!wasSuppressed && a.outcome === 'permanent' && suppressesAddress(enhanced)) {
      out.suppress.push({
        domain: c.domain,
        address: a.recipient,
        reason: 'BOUNCE',
        message: c.message,
      });
    }
  }
  return out;
}
