/**
 * Putting a locally submitted message into the queue, as Postfix's postdrop
 * and cleanup do: prepared from the sendmail(8) input (local.ts), stamped
 * with Received, Date and Message-ID, DKIM-signed with the keys of its From
 * domain, checked against the size limit and enqueued (fsync'd) in one go.
 * The running server does this for `posta sendmail` through its local
 * submission socket (socket.ts); without a server, sendmail does it itself.
 * Either way with the bulk fields (one-click unsubscribe, Feedback-ID) as
 * submission has them.
 */
import { PostaError } from '../errors.ts';
import { utf8Header } from '../message/header.ts';
import { newQueueId, type Envelope } from '../queue/spool.ts';
import type { DkimKey } from '../dkim/keys.ts';
import { prepareLocal, stampLocal } from './local.ts';
import type { LocalUser } from './maildrop.ts';
import { UnsubscribeError, type Bulk } from '../unsubscribe/fields.ts';
import type { NewLink } from '../unsubscribe/links.ts';

/** The sendmail flags that shape the envelope. */
export interface DropOptions {
  /** -t */
  fromHeaders: boolean;
  recipients: string[];
  /** -f (or -r) */
  sender?: string | undefined;
  /** -F */
  fullName?: string | undefined;
}

export interface DropContext {
  domains: readonly string[];
  hostname: string;
  messageSize: number;
  keys(domain: string): Promise<readonly DkimKey[]> | readonly DkimKey[];
  enqueue(envelope: Envelope, data: Buffer, id: string): Promise<string>;
  /** One-click unsubscribe and Feedback-ID (unsubscribe/fields.ts), as on 587. */
  bulk: Bulk;
}

export async function dropLocal(
  input: Buffer,
  o: DropOptions,
  /** Who submitted it: proved by the maildrop token, or this process's own user. */
  user: LocalUser,
  ctx: DropContext,
): Promise<{ queueId: string; sender: string; recipients: string[] }> {
  const message = prepareLocal({ data: input, ...o, domains: ctx.domains });
  const queueId = newQueueId();
  const { fromDomain } = message;
  let link: NewLink | undefined;
  if (fromDomain && ctx.domains.includes(fromDomain)) {
    const end = message.data.indexOf('\r\n\r\n');
    const cut = end < 0 ? message.data.length : end + 4;
    let bulk;
    try {
      bulk = ctx.bulk({
        head: message.data.subarray(0, cut),
        domain: fromDomain,
        recipients: message.recipients,
        keyId: undefined,
        tags: {},
      });
    } catch (err) {
      if (err instanceof UnsubscribeError) throw new PostaError(`${err.message}.`);
      throw err;
    }
    link = bulk.link;
    message.data = Buffer.concat([bulk.head, message.data.subarray(cut)]);
  }
  const keys = fromDomain && ctx.domains.includes(fromDomain) ? await ctx.keys(fromDomain) : [];
  const { data, messageId } = await stampLocal(message, {
    hostname: ctx.hostname,
    queueId,
    date: new Date(),
    keys,
    user,
  });
  if (data.length > ctx.messageSize) throw tooBig(ctx.messageSize);
  const envelope: Envelope = {
    sender: message.sender,
    recipients: message.recipients,
    source: 'submission',
    account: undefined,
    clientIp: '127.0.0.1',
    messageId,
    smtpUtf8: utf8Header(data), // RFC 6531 §3.4, as for an account on 587
    unsubscribe: link,
  };
  await ctx.enqueue(envelope, data, queueId);
  return { queueId, sender: message.sender, recipients: message.recipients };
}

export function tooBig(limit: number): PostaError {
  return new PostaError(
    `The message is larger than the limit of ${limit} bytes ([limits] message_size in posta.toml).`,
  );
}
