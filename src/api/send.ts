/**
 * The send service of the HTTP APIs: a whole RFC 5322 message and an access
 * key in, a message safely in the queue out, with its MessageId (the queue
 * id). SES v2 and v1, Raw or built from Simple fields (compose.ts), and the
 * Resend API all end here; it does what SMTP submission does to a message
 * (smtp/receive.ts), with the key in place of the account:
 *
 * - line ends become CRLF; a NUL byte, a line over 998 octets (RFC 5322
 *   §2.1.1) or a message over [limits] message_size is refused;
 * - the X-SES-* parameter headers (X-SES-CONFIGURATION-SET,
 *   X-SES-MESSAGE-TAGS, the *-ARN ones, X-SES-LIST-MANAGEMENT-OPTIONS) are
 *   read and removed, as SES does; list management options (that header or
 *   v2's ListManagementOptions) become the ses:contact-list and ses:topic
 *   tags, which ask for one-click unsubscribe;
 * - the bulk fields, one-click unsubscribe and Feedback-ID, when asked or
 *   configured (unsubscribe/fields.ts), before signing;
 * - From and Sender are read strictly (message/originator.ts) and must be
 *   of the key's domains, which must be this server's; so must the envelope
 *   sender (FromEmailAddress / Source, else the From address);
 * - recipients are the given envelope (Destination: Bcc lives only there),
 *   else the To, Cc and Bcc fields; at most 50, as SES allows;
 * - the key's quota is taken (keys/quota.ts);
 * - Bcc fields removed, Message-ID and Date added when missing, a Received
 *   field, the DKIM signatures of the From domain (message/stamp.ts);
 * - enqueued: fsync'd before the MessageId is returned.
 *
 * prepareSend makes the checks alone and queueSend does the rest, so that
 * a Resend batch can check all its messages before it queues any.
 */
import type { QueueStore } from '../store/queue-store.ts';
import addressparser from 'nodemailer/lib/addressparser';
import { Headers } from 'mailsplit';
import { domainOf } from '../address/address.ts';
import type { Directory } from '../domains/directory.ts';
import type { Signer } from '../dkim/pool.ts';
import type { Logger } from '../log/log.ts';
import { headerBlock, readHeader, utf8Header } from '../message/header.ts';
import { split, type Held } from '../message/held.ts';
import { longLine, longLineText } from '../message/lines.ts';
import { readOriginator } from '../message/originator.ts';
import { stampMessage } from '../message/stamp.ts';
import { newQueueId, type Envelope } from '../queue/spool.ts';
import {
  displayName,
  fieldAddresses,
  fieldName,
  normaliseAddress,
  splitMessage,
} from '../submit/local.ts';
import { keyMaySendFrom, type ApiKey } from '../keys/keys.ts';
import type { Quotas } from '../keys/quota.ts';
import { ApiError } from './errors.ts';
import { CONTACT_LIST_TAG, TOPIC_TAG, UnsubscribeError, type Bulk } from '../unsubscribe/fields.ts';
import type { NewLink } from '../unsubscribe/links.ts';

/** SES's limit of recipients per message (To, Cc and Bcc together). */
export const MAX_RECIPIENTS = 50;

export interface SendDeps {
  hostname: string;
  messageSize: number;
  directory: Directory;
  /** Where accepted mail is queued: durable when enqueue() resolves. */
  queue: Pick<QueueStore, 'enqueue'>;
  sign: Signer;
  quotas: Quotas;
  log: Logger;
  /** One-click unsubscribe and Feedback-ID (unsubscribe/fields.ts). */
  bulk: Bulk;
}

export interface SendInput {
  key: ApiKey;
  /** The message as the client gave it. */
  raw: Buffer;
  /** FromEmailAddress / Source: the envelope sender, "Name <a@b>" or "a@b". */
  from?: string | undefined;
  /** The envelope recipients; when absent, the To, Cc and Bcc fields. */
  destinations?: string[] | undefined;
  tags?: Record<string, string[]>;
  clientIp: string;
  /** "HTTP" or "HTTPS", for the Received field. */
  protocol: string;
  /** A lower size limit than [limits] message_size (SES v1: 10 MB). */
  maxSize?: number;
  /**
   * SES v2 with Raw content: FromEmailAddress and ReplyToAddresses replace
   * the message's From and Reply-To fields (what django-anymail and Rails'
   * ses_v2 count on: Rails leaves FromEmailAddress out to keep its From).
   */
  replace?: { from?: string | undefined; replyTo?: string[] | undefined };
}

const SES_HEADERS = [
  'x-ses-configuration-set',
  'x-ses-message-tags',
  'x-ses-source-arn',
  'x-ses-from-arn',
  'x-ses-return-path-arn',
  'x-ses-list-management-options',
];

/** A message checked and ready to queue: nothing taken from the quota or written yet. */
export interface PreparedSend {
  key: ApiKey;
  message: Held;
  fromDomain: string;
  sender: string;
  recipients: string[];
  tags: Record<string, string[]>;
  clientIp: string;
  protocol: string;
  /** Its unsubscribe link, recorded as it is queued. */
  link: NewLink | undefined;
}

export async function sendMessage(
  deps: SendDeps,
  input: SendInput,
): Promise<{ messageId: string }> {
  return queueSend(deps, prepareSend(deps, input));
}

/** Every check of sendMessage, without its effects: a batch checks all its messages first. */
export function prepareSend(deps: SendDeps, input: SendInput): PreparedSend {
  if (input.raw.includes(0)) {
    throw new ApiError(
      'bad-request',
      'The message contains a NUL byte; encode binary parts (base64).',
    );
  }
  let text = input.raw.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  if (!text.endsWith('\r\n')) text += '\r\n';
  const { fields } = splitMessage(text);
  const tags = { ...input.tags };
  let data: Buffer = Buffer.from(text, 'latin1');
  const params = fields.filter((f) => SES_HEADERS.includes(fieldName(f)));
  if (params.length) {
    for (const f of params) readSesHeader(fieldName(f), fieldValue(f), tags);
    data = withoutFields(data, SES_HEADERS);
  }
  if (input.replace?.from !== undefined || input.replace?.replyTo?.length) {
    data = replaceFields(data, input.replace);
  }
  const limit = Math.min(input.maxSize ?? Infinity, deps.messageSize);
  if (data.length > limit) {
    throw new ApiError('rejected', `Message length is more than ${limit} bytes long.`);
  }
  const long = longLine(data);
  if (long) throw new ApiError('rejected', `${longLineText(long)}.`);

  const given = split(data);
  const key = input.key;
  const fromDomain = checkFrom(given.head, key, deps.directory);
  const sender = envelopeSender(input.from, given.head, key, deps.directory);
  const recipients = envelopeRecipients(input.destinations, fields, deps.directory);
  let bulk;
  try {
    bulk = deps.bulk({ head: given.head, domain: fromDomain, recipients, keyId: key.id, tags });
  } catch (err) {
    if (err instanceof UnsubscribeError) throw new ApiError('bad-request', `${err.message}.`);
    throw err;
  }
  const message = { head: bulk.head, body: given.body };
  return {
    key,
    message,
    fromDomain,
    sender,
    recipients,
    tags,
    clientIp: input.clientIp,
    protocol: input.protocol,
    link: bulk.link,
  };
}

/**
 * Takes the quota (unless `quotaTaken`: a batch takes it for all its
 * messages at once), signs and queues; on a failure to queue, this
 * message's recipients go back to the quota.
 */
export async function queueSend(
  deps: SendDeps,
  p: PreparedSend,
  o: { quotaTaken?: boolean } = {},
): Promise<{ messageId: string }> {
  const { key, message, fromDomain, sender, recipients, tags } = p;
  if (!o.quotaTaken) {
    const refused = deps.quotas.take(key, recipients.length);
    if (refused) throw new ApiError(refused.kind, refused.message);
  }
  const queueId = newQueueId();
  try {
    const stamped = await stampMessage(message, {
      sign: deps.sign,
      header: readHeader(message.head),
      complete: true,
      fromDomain,
      keys: deps.directory.keys(fromDomain),
      trace: {
        helo: 'api',
        clientIp: p.clientIp,
        hostname: deps.hostname,
        protocol: p.protocol,
        tls: undefined,
        queueId,
        date: new Date(),
      },
    });
    const envelope: Envelope = {
      sender,
      recipients,
      source: 'submission',
      account: key.id,
      clientIp: p.clientIp,
      messageId: stamped.messageId,
      smtpUtf8: utf8Header(message.head),
      apiKey: key.id,
      tags,
      unsubscribe: p.link,
    };
    await deps.queue.enqueue(envelope, stamped.message, queueId);
    deps.quotas.settled(key, recipients.length);
  } catch (err) {
    deps.quotas.giveBack(key, recipients.length);
    deps.log.error(
      { qid: queueId, key: key.id, err: (err as Error).message },
      'API send not queued',
    );
    throw new ApiError('unavailable', 'posta could not store the message; try again later.');
  }
  deps.log.info(
    { qid: queueId, key: key.id, from: sender, rcpts: recipients.length },
    'API send queued',
  );
  return { messageId: queueId };
}

function fieldValue(field: string): string {
  return Buffer.from(field.slice(field.indexOf(':') + 1), 'latin1')
    .toString('utf8')
    .replace(/\r\n/g, '')
    .trim();
}

/**
 * X-SES-MESSAGE-TAGS: "name0=value0, name1=value1"; the configuration set is
 * the tag SES gives it; X-SES-LIST-MANAGEMENT-OPTIONS: "LIST; topic=TOPIC".
 */
function readSesHeader(name: string, value: string, tags: Record<string, string[]>): void {
  if (name === 'x-ses-configuration-set') tags['ses:configuration-set'] = [value];
  if (name === 'x-ses-list-management-options') {
    const [list = '', ...params] = value.split(';').map((p) => p.trim());
    const topic = params.find((p) => /^topic=/i.test(p))?.slice(6);
    listTags(tags, list, topic);
  }
  if (name !== 'x-ses-message-tags') return;
  for (const pair of value.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const [k, v] = [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()];
    tags[k] = [...(tags[k] ?? []), v];
  }
}

/** SES's ListManagementOptions as tags: they ask for one-click unsubscribe (unsubscribe/fields.ts). */
export function listTags(tags: Record<string, string[]>, list: string, topic?: string): void {
  tags[CONTACT_LIST_TAG] = [list];
  if (topic) tags[TOPIC_TAG] = [topic];
}

/** "Name <a@b>" written back as a field value: the name quoted, or an encoded word. */
function mailbox(value: string): string {
  const [m] = addressparser(value, { flatten: true });
  const address = (m?.address ?? '').trim();
  if (!address || /[\r\n]/.test(value)) {
    throw new ApiError('bad-request', `Invalid email address <${value}>.`);
  }
  const name = m?.name ?? '';
  // an encoded word (RFC 2047) as given stays one: quoting it would end it
  const encoded = /^(=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=\s*)+$/.test(name);
  return `${encoded ? `${name} ` : displayName(name)}<${address}>`;
}

/** The addresses of the fields `name` of a header, lower-cased, for comparing. */
function addressesOf(data: Buffer, name: string): string[] {
  const { fields } = splitMessage(`${headerBlock(data).toString('latin1')}\r\n`);
  return fieldAddresses(fields, [name])
    .map((a) => a.toLowerCase())
    .sort();
}

/** Replaces From and Reply-To, unless they already hold exactly those addresses. */
function replaceFields(data: Buffer, r: NonNullable<SendInput['replace']>): Buffer {
  const same = (name: string, values: string[]) =>
    addressesOf(data, name).join() ===
    values
      .map((v) => (addressparser(v, { flatten: true })[0]?.address ?? '').toLowerCase())
      .sort()
      .join();
  let lines = '';
  const names: string[] = [];
  if (r.from !== undefined && !same('from', [r.from])) {
    lines += `From: ${mailbox(r.from)}\r\n`;
    names.push('from');
  }
  if (r.replyTo?.length && !same('reply-to', r.replyTo)) {
    lines += `Reply-To: ${r.replyTo.map(mailbox).join(', ')}\r\n`;
    names.push('reply-to');
  }
  if (names.length === 0) return data;
  return Buffer.concat([Buffer.from(lines, 'utf8'), withoutFields(data, names)]);
}

function withoutFields(data: Buffer, names: readonly string[]): Buffer {
  const end = data.indexOf('\r\n\r\n');
  const h = new Headers(data.subarray(0, end < 0 ? data.length : end + 2));
  for (const n of names) h.remove(n);
  return Buffer.concat([h.build(), end < 0 ? Buffer.alloc(0) : data.subarray(end + 4)]);
}

function notVerified(address: string, key: ApiKey): ApiError {
  return new ApiError(
    'rejected',
    `Email address is not verified. The following identities failed the check: ${address} (access key ${key.id} may send from ${key.domains.join(', ')} only)`,
    'sender',
  );
}

/** May the key send from this address: one of its domains, and still one of ours? */
function mayUse(address: string, key: ApiKey, dir: Directory): boolean {
  return keyMaySendFrom(key, domainOf(address), (d) => dir.isLocal(d));
}

/** From and Sender read strictly, each of the key's domains; the From domain, which signs. */
function checkFrom(head: Buffer, key: ApiKey, dir: Directory): string {
  const r = readOriginator(headerBlock(head));
  if (!r.ok) throw new ApiError('rejected', `${r.problem}.`);
  const all = [...r.value.from, ...(r.value.sender ? [r.value.sender] : [])];
  for (const m of all) {
    const norm = normaliseAddress(m.address, dir.names(), undefined);
    if (norm === null || !mayUse(norm, key, dir)) throw notVerified(m.address, key);
  }
  return domainOf(normaliseAddress(r.value.from[0]?.address ?? '', dir.names(), undefined) ?? '');
}

function envelopeSender(
  given: string | undefined,
  head: Buffer,
  key: ApiKey,
  dir: Directory,
): string {
  const address = given === undefined ? (readHeader(head).from[0] ?? '') : parseOne(given);
  const norm = normaliseAddress(address, dir.names(), undefined);
  if (norm === null) throw new ApiError('bad-request', `Invalid email address <${address}>.`);
  if (!mayUse(norm, key, dir)) throw notVerified(address, key);
  return norm;
}

/** The address of "Name <a@b>" or "a@b". */
function parseOne(value: string): string {
  const [first] = addressparser(value, { flatten: true });
  return (first?.address ?? '').trim();
}

function envelopeRecipients(
  given: string[] | undefined,
  fields: readonly string[],
  dir: Directory,
): string[] {
  const listed = given ? given.map(parseOne) : fieldAddresses(fields, ['to', 'cc', 'bcc']);
  const out: string[] = [];
  for (const r of listed) {
    const norm = normaliseAddress(r, dir.names(), undefined);
    if (norm === null) throw new ApiError('bad-request', `Invalid email address <${r}>.`);
    if (!out.includes(norm)) out.push(norm);
  }
  if (out.length === 0) {
    throw new ApiError(
      'bad-request',
      'The message has no recipients: give Destination or To/Cc/Bcc fields.',
    );
  }
  if (out.length > MAX_RECIPIENTS) {
    throw new ApiError('bad-request', `Recipient count exceeds ${MAX_RECIPIENTS}.`);
  }
  return out;
}
