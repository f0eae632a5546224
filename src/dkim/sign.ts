/**
 * DKIM signing (RFC 6376) of a whole message with every key of its domain:
 * relaxed/relaxed, no l= tag, rsa-sha256 and ed25519-sha256 (RFC 8463).
 * Returns the DKIM-Signature header lines to put in front of the message,
 * each ending in CRLF.
 *
 * The message is a Buffer or a held one (message/held.ts) whose body may be
 * in a file: the body hash is computed over the body as a stream, so a large
 * message is never read into memory whole.
 *
 * The canonicalization, body hash and header formatting are mailauth's. Its
 * dkimSign() cannot oversign, so this module drives those parts itself.
 *
 * Which fields are signed: mailauth's default list (RFC 6376 §5.4.1's
 * recommendation: From, Subject, Date, To, Cc, Reply-To, the MIME and List-*
 * fields, ...) and the three it lacks: List-Unsubscribe-Post (RFC 8058 §4:
 * one-click unsubscribe counts only when it is signed), Feedback-ID (Gmail's
 * feedback loop) and Auto-Submitted (RFC 3834; a DSN's says it must not be
 * answered).
 *
 * Over-signing (RFC 6376 §8.15): each field in OVERSIGNED goes into h= once
 * more than it occurs, so an absent one is signed as absent. A replayer who
 * adds a Reply-To, a Cc, a second From or a second Content-Type to a genuine
 * message (to reuse its signature for spam) breaks the signature instead. The
 * list is what rspamd and Google over-sign: the fields a reader sees or a
 * client acts on.
 */
import { createHash, sign } from 'node:crypto';
import { dkimBody } from 'mailauth/lib/dkim/body/index.js';
import { generateCanonicalizedHeader } from 'mailauth/lib/dkim/header/index.js';
import {
  defaultDKIMFieldNames,
  formatSignatureHeaderLine,
  getSigningHeaderLines,
  parseHeaders,
} from 'mailauth/lib/tools.js';
import type { DkimKey } from './keys.ts';
import { bodyStream, split, type Held } from '../message/held.ts';

/** What signing needs of a key (a DkimKey is one; a worker thread gets just these). */
export type SigningKey = Pick<DkimKey, 'selector' | 'algorithm' | 'privateKey'>;

const SIGNED = `${defaultDKIMFieldNames}:List-Unsubscribe-Post:Feedback-ID:Auto-Submitted`;

export const OVERSIGNED = [
  'From',
  'To',
  'Cc',
  'Reply-To',
  'Sender',
  'Subject',
  'Date',
  'Message-ID',
  'In-Reply-To',
  'References',
  'MIME-Version',
  'Content-Type',
  'Content-Transfer-Encoding',
  'List-Unsubscribe',
  'List-Unsubscribe-Post',
  'Feedback-ID',
  'Auto-Submitted',
];

export async function signMessage(
  message: Buffer | Held,
  domain: string,
  keys: readonly SigningKey[],
  now = new Date(),
): Promise<string> {
  if (keys.length === 0) return '';
  const held = Buffer.isBuffer(message) ? split(message) : message;
  const hasher = dkimBody('relaxed', 'sha256', false);
  for await (const chunk of bodyStream(held)) hasher.update(chunk as Buffer);
  const bodyHash = hasher.digest('base64');
  // the header without the empty line that ends it
  const end = held.head.indexOf('\r\n\r\n');
  const { parsed } = parseHeaders(end < 0 ? held.head : held.head.subarray(0, end + 2));
  const lines = getSigningHeaderLines(parsed, SIGNED);
  const signing = { keys: [lines.keys, ...OVERSIGNED].join(': '), headers: lines.headers };
  const timestamp = Math.floor(now.getTime() / 1000);
  let out = '';
  for (const key of keys) {
    const algorithm = key.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256';
    const { canonicalizedHeader, dkimHeaderOpts } = generateCanonicalizedHeader('DKIM', signing, {
      signingDomain: domain,
      selector: key.selector,
      algorithm,
      canonicalization: 'relaxed/relaxed',
      bodyHash,
      timestamp,
    });
    // RFC 8463 §3: Ed25519 signs the SHA-256 hash of the canonicalized header.
    dkimHeaderOpts.b = (
      key.algorithm === 'rsa'
        ? sign('sha256', canonicalizedHeader, key.privateKey)
        : sign(null, createHash('sha256').update(canonicalizedHeader).digest(), key.privateKey)
    ).toString('base64');
    out += `${formatSignatureHeaderLine('DKIM', dkimHeaderOpts, true)}\r\n`;
  }
  return out;
}
