/**
 * End of DATA: from the bytes a client sent to a message safely in the spool.
 *
 * 1. The body is read whole while it arrives; a bare CR or LF, or a NUL byte,
 *    anywhere in it refuses the message (RFC 5321 §2.3.8, §4.1.4): this is what
 *    makes every SMTP smuggling variant (`\n.\n`, `\r.\r`, `\r\n\0.\r\n`, ...) a
 *    plain rejected message instead of a hidden second transaction, and keeps
 *    bare line endings out of anything posta relays.
 * 2. Size: over the limit gets 552 5.3.4 (RFC 1870 §6.3). A line over 998
 *    octets, in the header or the body, gets 550 5.6.0 (RFC 5322 §2.1.1) on
 *    every port: posta signs and relays what it takes unchanged, and a strict
 *    receiver would refuse it later.
 * 3. Submission: exactly one From, each of whose addresses the account may use
 *    (header fields read as UTF-8, RFC 6532); Bcc fields removed; Message-ID
 *    and Date added when missing (RFC 6409 §8).
 * 4. A Received trace field, then DKIM signatures of the From domain's keys.
 * 5. Inbound (25): SPF, DKIM, DMARC and ARC checked (verify/inbound.ts), an
 *    Authentication-Results field and an ARC set of the recipient's domain
 *    added on top; DMARC p=reject failures refused.
 * 6. The spool commits (fsync) and only then does the client get 250. It
 *    notes whether the next hop must get SMTPUTF8: when the header is UTF-8
 *    and the client asked for SMTPUTF8 or is one of our accounts (RFC 6531
 *    §3.4); delivery adds it for non-ASCII addresses by itself.
 *
 * A refused message is never queued; the session goes on (server.ts).
 */
import { domainOf } from '../address/address.ts';
import type { Readable } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import type { ResolvedConfig } from '../config/load.ts';
import type { Directory } from '../domains/directory.ts';
import type { Logger } from '../log/log.ts';
import { newQueueId, type Spool } from '../queue/spool.ts';
import { maySendAs, normaliseEnvelope } from './policy.ts';
import { readHeader, utf8Header } from '../message/header.ts';
import { longLine, longLineText } from '../message/lines.ts';
import { stampMessage } from '../message/stamp.ts';
import { SmtpReply } from './reply.ts';
import type { Verifier } from '../verify/pool.ts';
import type { SenderAuth } from '../verify/inbound.ts';
import {
  C451LocalError,
  C452StorageFull,
  C550BadHeader,
  C550FromNotAllowed,
  C550LineTooLong,
  C552TooBig,
  C554BareLineEnding,
} from './reply.ts';

export interface ReceiveDeps {
  config: ResolvedConfig;
  directory: Directory;
  spool: Spool;
  log: Logger;
  /** Inbound checks (verify/pool.ts). */
  verify: Verifier;
}

export type Source = 'submission' | 'inbound';

export interface Accepted {
  queueId: string;
  messageId: string | undefined;
  size: number;
}

export async function receive(
  stream: Readable & { sizeExceeded?: boolean },
  session: SMTPServerSession,
  source: Source,
  deps: ReceiveDeps,
): Promise<Accepted> {
  const { data, problem, size } = await readChecked(stream, deps.config.limits.messageSize);
  if (stream.sizeExceeded || size > deps.config.limits.messageSize) {
    throw C552TooBig(`Message exceeds the size limit of ${deps.config.limits.messageSize} bytes`);
  }
  if (problem) throw C554BareLineEnding(problem);
  const long = longLine(data);
  if (long) {
    throw C550LineTooLong(longLineText(long));
  }

  const account = source === 'submission' ? accountOf(session) : undefined;
  const header = readHeader(data);
  let fromDomain: string | undefined;
  if (account !== undefined) {
    if (header.fromFields !== 1) {
      throw C550BadHeader(
        `The message must have exactly one From field; it has ${header.fromFields}`,
      );
    }
    for (const from of header.from) {
      const norm = normaliseEnvelope(from, deps.directory);
      if (norm === null || !maySendAs(account, norm, deps.directory)) {
        throw C550FromNotAllowed(`${account} may not send with From: ${from}`);
      }
      fromDomain ??= domainOf(norm);
    }
  }

  const queueId = newQueueId();
  const secure = session.secure ? 'S' : '';
  const stamped = stampMessage(data, {
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
  let message = stamped.data;
  let senderAuth: SenderAuth | undefined;
  if (source === 'inbound') {
    ({ message, senderAuth } = await checkInbound(message, session, queueId, deps));
  }

  const envelope = {
    sender: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
    recipients: session.envelope.rcptTo.map((r) => r.address),
    source,
    account,
    clientIp: session.remoteAddress,
    messageId: stamped.messageId,
    // RFC 6531 §3.4: a UTF-8 header travels on with SMTPUTF8.
    smtpUtf8: (session.envelope.smtpUtf8 === true || account !== undefined) && utf8Header(data),
    senderAuth,
  };
  try {
    await deps.spool.enqueue(envelope, message, queueId);
  } catch (err) {
    deps.log.error({ qid: queueId, err: (err as Error).message }, 'queue write failed');
    throw storageError(err as Error);
  }
  return { queueId, messageId: envelope.messageId, size: message.length };
}

/** Verify, refuse or seal mail from another server; returns the message to queue. */
async function checkInbound(
  message: Buffer,
  session: SMTPServerSession,
  queueId: string,
  deps: ReceiveDeps,
): Promise<{ message: Buffer; senderAuth: SenderAuth }> {
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
    message: Buffer.concat([Buffer.from(checked.headers), checked.message]),
    senderAuth: checked.senderAuth,
  };
}

/**
 * Reads the whole body, noting the first bare CR, bare LF or NUL. Past
 * `limit` bytes nothing more is kept (the message will be refused with 552),
 * so a client streaming without end cannot fill the memory.
 */
async function readChecked(
  stream: Readable,
  limit: number,
): Promise<{ data: Buffer; problem: string | null; size: number }> {
  const chunks: Buffer[] = [];
  let problem: string | null = null;
  let prev = 10; // as if after a line end
  let size = 0;
  for await (const c of stream) {
    const chunk = c as Buffer;
    if (!problem) problem = lineProblem(chunk, prev);
    if (chunk.length) prev = chunk[chunk.length - 1] ?? prev;
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (!problem && prev === 13) problem = 'The message ends in a bare CR';
  return { data: Buffer.concat(chunks), problem, size };
}

function lineProblem(chunk: Buffer, prev: number): string | null {
  if (chunk.indexOf(0) >= 0) return 'The message contains a NUL byte, which SMTP does not allow';
  for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
    if ((i === 0 ? prev : chunk[i - 1]) !== 13) {
      return 'The message contains a bare LF; lines must end with CRLF (RFC 5321 section 2.3.8)';
    }
  }
  if (prev === 13 && chunk[0] !== 10) {
    return 'The message contains a bare CR; lines must end with CRLF (RFC 5321 section 2.3.8)';
  }
  for (let i = chunk.indexOf(13); i >= 0 && i < chunk.length - 1; i = chunk.indexOf(13, i + 1)) {
    if (chunk[i + 1] !== 10) {
      return 'The message contains a bare CR; lines must end with CRLF (RFC 5321 section 2.3.8)';
    }
  }
  return null;
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
