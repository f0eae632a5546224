/**
 * Amazon SNS's HTTP envelope, so that consumers of SES events through SNS
 * (django-ses, django-anymail, Mautic's SES plugin) take posta's webhooks
 * unchanged (research/ses-api.md §4.1, §4.3;
 * https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html).
 *
 * - A Notification carries the SES event JSON as a string in `Message`; a
 *   SubscriptionConfirmation, sent once when an endpoint first appears,
 *   carries `SubscribeURL` and `Token`.
 * - The signature: SignatureVersion 1 is SHA1withRSA, 2 SHA256withRSA, over
 *   "Name\nvalue\n" for Message, MessageId, Subject (when there is one),
 *   SubscribeURL and Token (for confirmations), Timestamp, TopicArn, Type,
 *   in that order; base64.
 * - The key and its certificate are posta's own, made once in the data
 *   folder (sns-signing.pem, 0600) and served at SigningCertURL:
 *   https://HOSTNAME/sns/SimpleNotificationService-HASH.pem, so a consumer
 *   that checks signatures must trust that host (django-ses:
 *   AWS_SNS_EVENT_CERT_TRUSTED_DOMAINS).
 */
import { createHash, randomUUID, sign } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { writeFileAtomic } from '../fsutil/atomic.ts';

export const SUBJECT = 'Amazon SES Email Event Notification';

export interface SnsSigner {
  /** The PEM certificate consumers verify with. */
  cert: string;
  /** Its URL path, /sns/SimpleNotificationService-HASH.pem. */
  certPath: string;
  key: string;
}

const FILE = 'sns-signing.pem';

/** The signing key and certificate of this server, made on first use. */
export async function loadSnsSigner(dataDir: string, hostname: string): Promise<SnsSigner> {
  const file = join(dataDir, FILE);
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const { selfSignedCertificate } = await import('../tls/selfsigned.ts');
    const made = await selfSignedCertificate([hostname]);
    pem = `${made.key.toString()}\n${made.cert.toString()}`;
    await writeFileAtomic(file, pem, 0o600);
  }
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem)?.[0];
  const key = /-----BEGIN (RSA )?PRIVATE KEY-----[\s\S]+?-----END (RSA )?PRIVATE KEY-----\n?/.exec(
    pem,
  )?.[0];
  if (!cert || !key)
    throw new Error(`${file} holds no key and certificate; remove it to make new ones`);
  const hash = createHash('sha256').update(cert).digest('hex').slice(0, 32);
  return { cert, key, certPath: `/sns/SimpleNotificationService-${hash}.pem` };
}

/** GET of the certificate's path, on the http and https listeners; true when answered. */
export function serveSnsCert(
  signer: SnsSigner | null,
  req: IncomingMessage,
  res: ServerResponse,
): boolean {
  if (!signer || req.method !== 'GET' || req.url !== signer.certPath) return false;
  res.writeHead(200, { 'content-type': 'application/x-pem-file' }).end(signer.cert);
  return true;
}

export interface SnsMessage {
  Type: 'Notification' | 'SubscriptionConfirmation';
  MessageId: string;
  TopicArn: string;
  Subject?: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: '1' | '2';
  Signature: string;
  SigningCertURL: string;
  UnsubscribeURL?: string;
  SubscribeURL?: string;
  Token?: string;
}

/** The string SNS signs, from the fields present, in SNS's order. */
export function stringToSign(m: Omit<SnsMessage, 'Signature'>): string {
  const names =
    m.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const fields = m as unknown as Record<string, string | undefined>;
  return names
    .filter((n) => fields[n] !== undefined)
    .map((n) => `${n}\n${fields[n]}\n`)
    .join('');
}

export function snsEnvelope(
  signer: SnsSigner,
  o: {
    type: SnsMessage['Type'];
    /** Kept across attempts of one notification; a new one by default. */
    messageId?: string;
    topicArn: string;
    message: string;
    base: string;
    version: 1 | 2;
    subscribeUrl?: string;
    token?: string;
    unsubscribeUrl?: string;
  },
): SnsMessage {
  const unsigned: Omit<SnsMessage, 'Signature'> = {
    Type: o.type,
    MessageId: o.messageId ?? randomUUID(),
    ...(o.token !== undefined ? { Token: o.token } : {}),
    TopicArn: o.topicArn,
    ...(o.type === 'Notification' ? { Subject: SUBJECT } : {}),
    Message: o.message,
    ...(o.subscribeUrl !== undefined ? { SubscribeURL: o.subscribeUrl } : {}),
    Timestamp: new Date().toISOString(),
    SignatureVersion: o.version === 2 ? '2' : '1',
    SigningCertURL: `${o.base}${signer.certPath}`,
    ...(o.unsubscribeUrl !== undefined ? { UnsubscribeURL: o.unsubscribeUrl } : {}),
  };
  const signature = sign(
    o.version === 2 ? 'sha256' : 'sha1',
    Buffer.from(stringToSign(unsigned)),
    signer.key,
  );
  return { ...unsigned, Signature: signature.toString('base64') };
}
