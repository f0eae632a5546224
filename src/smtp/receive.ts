/**
 * End of DATA: from the bytes a client sent to a message safely in the spool.
 *
 * 1. The DATA reader (data.ts) checks the bytes as they arrive and holds
 *    them with bounded memory: a bare CR or LF, or a NUL byte, anywhere
 *    refuses the message (RFC 5321 §2.3.8, §4.1.4), which makes every SMTP
 *    smuggling variant a plain rejected message; a line over 998 octets gets
 *    550 5.6.0 (RFC 5322 §2.1.1) on every port, since posta signs and relays
 *    what it takes unchanged; over the size limit (RFC 1870 §6.3) or the
 *    header limit gets 552 5.3.4; with the memory budget spent, 452 4.3.1.
 * 2. A large message's body stays in its temporary file from here to the
 *    spool: only the header section is in memory (message/held.ts).
 * 3. Submission: exactly one From of unambiguous mailboxes, and at most one
 *    Sender of one, each of whose addresses the principal (an account or an
 *    access key, principal.ts) may use (header fields read as UTF-8, RFC
 *    6532; originator.ts); Bcc fields removed; Message-ID and Date added
 *    when missing (RFC 6409 §8). An access key's quota is taken here, for
 *    every recipient (keys/quota.ts; 451 4.7.1 over it), and given back when
 *    the message is not queued after all; the envelope names the key, so
 *    the spool counts it.
 * 4. Submission: the bulk fields, one-click unsubscribe and Feedback-ID, when
 *    asked or configured (unsubscribe/fields.ts); then a Received trace
 *    field, then DKIM signatures of the From domain's keys.
 * 5. Inbound (25), unless [inbound] checks = false: SPF, DKIM, DMARC and
 *    ARC checked (verify/inbound.ts), an Authentication-Results field and an
 *    ARC set of the recipient's domain added on top; DMARC p=reject failures
 *    refused.
 * 6. The spool commits (synced, queue/wal-sync.ts) and only then does the client get 250. It
 *    notes whether the next hop must get SMTPUTF8: when the header is UTF-8
 *    and the client asked for SMTPUTF8 or is one of our accounts (RFC 6531
 *    §3.4); delivery adds it for non-ASCII addresses by itself.
 * 7. Inbound: a feedback report (RFC 5965) about mail posta sent records a
 *    complaint (events/complaints.ts) before the 250; it is forwarded too.
 *    A mail to an unsubscribe address (alone in its transaction) is not
 *    queued: it unsubscribes (unsubscribe/mailto.ts), then gets its 250.
 *    So is a DMARC aggregate or TLS report to postmaster@ one of our domains,
 *    which is stored for `posta reports` (reports/take.ts) before the 250.
 *
 * A refused message is never queued; the session goes on (server.ts).
 */
import type { QueueStore } from '../store/queue-store.ts';
import { domainOf, localPartOf } from '../address/address.ts';
import type { Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import type { ResolvedConfig } from '../config/load.ts';
import type { Directory } from '../domains/directory.ts';
import type { Logger } from '../log/log.ts';
import { newQueueId, type Spool } from '../queue/spool.ts';
import { checkOriginator } from './originator.ts';
import { principalOf, type Principal } from './principal.ts';
import type { ApiKey, KeyStore } from '../keys/keys.ts';
import type { Quotas } from '../keys/quota.ts';
import { headerBlock, readHeader, utf8Header } from '../message/header.ts';
import { heldSize, type Held } from '../message/held.ts';
import { stampMessage } from '../message/stamp.ts';
import { incomingDir, readData, type MemoryBudget } from './data.ts';
import type { Verifier } from '../verify/pool.ts';
import type { Signer } from '../dkim/pool.ts';
import type { SenderAuth } from '../verify/inbound.ts';
import {
  C451LocalError,
  C451QuotaExceeded,
  C452StorageFull,
  C550BadHeader,
  C550NoSuchUser,
  C552TooBig,
  SmtpReply,
} from './reply.ts';
import { looksLikeFeedbackReport } from '../events/arf.ts';
import { UnsubscribeError, type Bulk } from '../unsubscribe/fields.ts';
import type { NewLink } from '../unsubscribe/links.ts';
import { takeUnsubscribeMail, unsubscribeAddressToken } from '../unsubscribe/mailto.ts';
import type { UnsubscribeStore } from '../unsubscribe/unsubscribe.ts';
import { reportKind } from '../reports/mail.ts';
import type { ReportBudget } from '../reports/budget.ts';
import { REPORT_LOCAL } from '../dnsrecords/records.ts';

export interface ReceiveDeps {
  config: ResolvedConfig;
  directory: Directory;
  spool: Spool;
  /** Where accepted mail is queued (durable when enqueue() resolves), and unsubscribes are kept. */
  queue: Pick<QueueStore, 'enqueue'> & UnsubscribeStore;
  log: Logger;
  /** Inbound checks (verify/pool.ts). */
  verify: Verifier;
  /** Bytes of messages in memory, over all sessions (data.ts). */
  budget: MemoryBudget;
  /** DKIM signing, off the main thread (dkim/pool.ts). */
  sign: Signer;
  /** Access keys, for sessions that logged in with one (principal.ts). */
  keys: KeyStore;
  /** Their quotas, shared with the HTTP APIs. */
  quotas: Quotas;
  /** One-click unsubscribe and Feedback-ID for submitted mail. */
  bulk: Bulk;
  /** What reading DMARC and TLS reports may spend of this thread (reports/budget.ts). */
  reportBudget: ReportBudget;
}

export type Source = 'submission' | 'inbound';

export interface Accepted {
  queueId: string;
  messageId: string | undefined;
  size: number;
  /** A mail to an unsubscribe address: taken, not queued. */
  unsubscribed?: true;
}

export async function receive(
  stream: Readable & { sizeExceeded?: boolean },
  session: SMTPServerSession,
  source: Source,
  deps: ReceiveDeps,
): Promise<Accepted> {
  let read;
  try {
    read = await readData(stream, {
      messageSize: deps.config.limits.messageSize,
      headerSize: deps.config.limits.headerSize,
      budget: deps.budget,
      incoming: incomingDir(deps.config.dataDir),
    });
  } catch (err) {
    // the client went away (or posta closed it at a timeout): nobody to answer
    if ((err as { code?: string }).code === 'ECONNECTION') throw err;
    deps.log.error({ cid: session.id, err: (err as Error).message }, 'message not read');
    throw storageError(err as Error);
  }
  try {
    if (stream.sizeExceeded) {
      throw C552TooBig(`Message exceeds the size limit of ${deps.config.limits.messageSize} bytes`);
    }
    if (read.refuse) throw read.refuse;
    return await accept(read.held, session, source, deps);
  } finally {
    await read.release();
  }
}

async function accept(
  data: Held,
  session: SMTPServerSession,
  source: Source,
  deps: ReceiveDeps,
): Promise<Accepted> {
  const [only, ...others] = session.envelope.rcptTo;
  if (source === 'inbound' && only && !others.length && unsubscribeAddressToken(only.address)) {
    return takeUnsubscribe(data, only.address, deps);
  }
  const principal =
    source === 'submission' ? principalOf(accountOf(session), deps.keys) : undefined;
  const fromDomain =
    principal === undefined
      ? undefined
      : checkOriginator(headerBlock(data.head), principal, deps.directory);
  // The quota is taken here, at the end of DATA, rather than at each RCPT:
  // one decision per message over all its recipients, as the APIs take it
  // (a message to 50 under a rate of 14 passes once, then the debt waits),
  // and nothing to give back for a transaction that RSET, a refused From or
  // a dropped connection ends before it is queued.
  const key = principal?.kind === 'key' ? principal.key : undefined;
  const recipients = session.envelope.rcptTo.length;
  if (key) takeQuota(key, recipients, deps.quotas);
  try {
    const queued = await queue(data, session, source, deps, principal, fromDomain);
    if (key) deps.quotas.settled(key, recipients);
    return queued;
  } catch (err) {
    if (key) deps.quotas.giveBack(key, recipients);
    throw err;
  }
}

/** A mail to unsubscribe+TOKEN@: consumed, never queued. */
async function takeUnsubscribe(data: Held, address: string, deps: ReceiveDeps): Promise<Accepted> {
  const queueId = newQueueId();
  const taken = await takeUnsubscribeMail({ store: deps.queue, log: deps.log }, address, queueId);
  if (!taken) throw C550NoSuchUser(`<${address}>: no such unsubscribe address here`);
  return {
    queueId,
    messageId: readHeader(data.head).messageId,
    size: heldSize(data),
    unsubscribed: true,
  };
}

function takeQuota(key: ApiKey, recipients: number, quotas: Quotas): void {
  const refused = quotas.take(key, recipients);
  if (!refused) return;
  const what = refused.kind === 'rate' ? 'Maximum sending rate' : 'Daily message quota';
  throw C451QuotaExceeded(`${what} exceeded for access key ${key.id}; try again later`);
}

/** Stamp, sign, (inbound) verify and enqueue a message that passed the checks. */
async function queue(
  data: Held,
  session: SMTPServerSession,
  source: Source,
  deps: ReceiveDeps,
  principal: Principal | undefined,
  fromDomain: string | undefined,
): Promise<Accepted> {
  const account = principal?.name;
  const queueId = newQueueId();
  let link: NewLink | undefined;
  if (fromDomain) {
    const bulk = bulkFields(data.head, session, fromDomain, principal, deps);
    link = bulk.link;
    data = { head: bulk.head, body: data.body };
  }
  const header = readHeader(data.head);
  const secure = session.secure ? 'S' : '';
  const stamped = await stampMessage(data, {
    sign: deps.sign,
    header,
    complete: account !== undefined,
    fromDomain,
    keys: fromDomain ? deps.directory.keys(fromDomain) : [],
    trace: {
      helo: session.hostNameAppearsAs || 'unknown',
      clientIp: session.remoteAddress,
      hostname: deps.config.hostname,
      protocol: `ESMTP${secure}${account !== undefined ? 'A' : ''}`,
      tls: tlsVersion(session),
      queueId,
      date: new Date(),
    },
  });
  let message = stamped.message;
  let senderAuth: SenderAuth | undefined;
  if (source === 'inbound' && deps.config.inbound.checks) {
    ({ message, senderAuth } = await checkInbound(message, session, queueId, deps));
  } else if (source === 'inbound') {
    // [inbound] checks = false: nothing verified its sender, so no DSN goes to it
    senderAuth = { spf: 'unchecked', dkim: 'unchecked' };
  }

  const envelope = {
    sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    recipients: session.envelope.rcptTo.map((r) => r.address),
    source,
    account,
    apiKey: principal?.kind === 'key' ? principal.name : undefined,
    clientIp: session.remoteAddress,
    messageId: stamped.messageId,
    // RFC 6531 §3.4: a UTF-8 header travels on with SMTPUTF8.
    smtpUtf8:
      (session.envelope.smtpUtf8 === true || account !== undefined) && utf8Header(data.head),
    senderAuth,
    unsubscribe: link,
  };
  try {
    await deps.queue.enqueue(envelope, message, queueId);
  } catch (err) {
    deps.log.error({ qid: queueId, err: (err as Error).message }, 'queue write failed');
    throw storageError(err as Error);
  }
  // a feedback report about mail posta sent: a complaint (events/complaints.ts)
  if (source === 'inbound' && looksLikeFeedbackReport(message.head)) {
    // loaded by the first report: it reads alignment with mailauth's public suffix list
    const { takeComplaint } = await import('../events/complaints.ts');
    await takeComplaint(
      { spool: deps.spool, hostname: deps.config.hostname, log: deps.log },
      message,
      queueId,
      { address: envelope.sender, auth: senderAuth },
    );
  }
  // a DMARC aggregate or TLS report for the rua address `posta dns` publishes (reports/)
  const report =
    source === 'inbound' && envelope.recipients.some((r) => isReportAddress(r, deps.directory))
      ? reportKind(message.head)
      : null;
  if (report) {
    // loaded by the first report: the XML reader, fflate and zod's schema
    const { takeReports } = await import('../reports/take.ts');
    await takeReports(
      {
        record: (r) => deps.spool.recordReport(r),
        domains: deps.directory.names(),
        budget: deps.reportBudget,
        log: deps.log,
      },
      message,
      report,
      queueId,
      { address: envelope.sender, auth: senderAuth },
    );
  }
  return { queueId, messageId: envelope.messageId, size: heldSize(message) };
}

/** The bulk fields of submitted mail (unsubscribe/fields.ts); a request it cannot have is a 550. */
function bulkFields(
  head: Buffer,
  session: SMTPServerSession,
  domain: string,
  principal: Principal | undefined,
  deps: ReceiveDeps,
): ReturnType<Bulk> {
  try {
    return deps.bulk({
      head,
      domain,
      recipients: session.envelope.rcptTo.map((r) => r.address),
      keyId: principal?.kind === 'key' ? principal.key.id : undefined,
      tags: {},
    });
  } catch (err) {
    if (!(err instanceof UnsubscribeError)) throw err;
    // RFC 3463: 5.5.3 too many recipients; 5.6.0 a header field it cannot take
    if (err.kind === 'recipients') throw new SmtpReply(550, '5.5.3', err.message);
    throw C550BadHeader(err.message);
  }
}

/** postmaster@ one of our domains: where `posta dns` says to send reports. */
function isReportAddress(address: string, directory: Directory): boolean {
  return (
    localPartOf(address).toLowerCase() === REPORT_LOCAL && directory.isLocal(domainOf(address))
  );
}

/** Verify, refuse or seal mail from another server; returns the message to queue. */
async function checkInbound(
  message: Held,
  session: SMTPServerSession,
  queueId: string,
  deps: ReceiveDeps,
): Promise<{ message: Held; senderAuth: SenderAuth }> {
  const first = session.envelope.rcptTo[0]?.address ?? '';
  const domain = domainOf(first);
  const key = deps.directory.keys(domain).find((k) => k.algorithm === 'rsa');
  let checked;
  try {
    checked = await deps.verify({
      message,
      ip: session.remoteAddress,
      helo: session.hostNameAppearsAs || '',
      sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      hostname: deps.config.hostname,
      seal: key && { domain, key: { selector: key.selector, pem: key.pem } },
      dmarcReject: deps.config.inbound.dmarcReject,
      localDomains: deps.directory.names(),
    });
  } catch (err) {
    deps.log.error({ qid: queueId, err: (err as Error).message }, 'inbound verification failed');
    throw C451LocalError('Local error while checking the message; try again later');
  }
  deps.log.info({ qid: queueId, ...checked.summary }, 'verified');
  if (checked.sealError) {
    deps.log.warn({ qid: queueId, err: checked.sealError }, 'not ARC-sealed');
  }
  if (checked.refuse) {
    const r = checked.refuse;
    throw new SmtpReply(r.code, r.enhanced, r.text);
  }
  return {
    message: {
      head: Buffer.concat([Buffer.from(checked.headers), checked.head]),
      body: message.body,
    },
    senderAuth: checked.senderAuth,
  };
}

function storageError(err: Error): SmtpReply {
  const code = (err as { code?: string; errcode?: number }).code ?? '';
  const text = err.message;
  if (/ENOSPC|SQLITE_FULL|disk is full|database or disk is full/i.test(`${code} ${text}`)) {
    return C452StorageFull('Insufficient storage; try again later');
  }
  return C451LocalError('Local error while storing the message; try again later');
}

function accountOf(session: SMTPServerSession): string {
  return String(session.user ?? '');
}

function tlsVersion(session: SMTPServerSession): string | undefined {
  if (!session.secure) return undefined;
  const info = session.tlsOptions as { version?: string; name?: string } | undefined;
  return info?.version ? `${info.version} ${info.name ?? ''}`.trim() : 'TLS';
}
