/**
 * DKIM signing (RFC 6376) of a whole message with every key of its domain,
 * through mailauth: relaxed/relaxed, no l= tag, rsa-sha256 and ed25519-sha256
 * (RFC 8463). Returns the DKIM-Signature header lines to put in front of the
 * message, each ending in CRLF.
 */
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { PostaError } from '../errors.ts';
import type { DkimKey } from './keys.ts';

export async function signMessage(
  message: Buffer,
  domain: string,
  keys: readonly DkimKey[],
): Promise<string> {
  if (keys.length === 0) return '';
  const result = await dkimSign(message, {
    signingDomain: domain,
    selector: keys[0]?.selector ?? '',
    privateKey: keys[0]?.pem ?? '',
    canonicalization: 'relaxed/relaxed',
    signatureData: keys.map((k) => ({
      signingDomain: domain,
      selector: k.selector,
      privateKey: k.pem,
      algorithm: k.algorithm === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256',
      canonicalization: 'relaxed/relaxed',
    })),
  });
  if (result.errors.length > 0) {
    const e = result.errors[0];
    throw new PostaError(
      `DKIM signing for ${domain} failed: ${String(e?.err ?? 'unknown error')}.`,
    );
  }
  return result.signatures;
}
