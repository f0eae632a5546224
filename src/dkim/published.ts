/**
 * Is a DKIM key's record published as it should be? The question the doctor
 * asks of every key, and the server of a rotation's new keys before it signs
 * with them: SELECTOR._domainkey.DOMAIN has exactly one key record, its k= is
 * the key's algorithm and its p= the key's public half (RFC 6376 §3.6.1;
 * RFC 8463 §4 for Ed25519's raw 32 bytes). DNS comes in as a resolver; a
 * temporary failure (SERVFAIL, a timeout) throws, so that "could not ask" is
 * never taken for "not published".
 */
import { createPublicKey } from 'node:crypto';
import type { ResolveFn } from '../dns/resolver.ts';
import { tags, txt } from '../doctor/lookup.ts';
import { dkimTxt, type DkimKey } from './keys.ts';

/** The key in a p= value, as SubjectPublicKeyInfo DER, or null when it does not decode. */
function publishedKey(algorithm: DkimKey['algorithm'], p: string): Buffer | null {
  const raw = Buffer.from(p.replace(/\s+/g, ''), 'base64');
  if (algorithm === 'ed25519') return raw.length === 32 ? raw : null;
  // RFC 6376 §3.6.1 says SubjectPublicKeyInfo; some publish the bare RSAPublicKey.
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return createPublicKey({ key: raw, format: 'der', type }).export({
        type: 'spki',
        format: 'der',
      });
    } catch {
      // try the next form
    }
  }
  return null;
}

const sameKey = (a: Buffer | null, b: Buffer | null) => a !== null && b !== null && a.equals(b);

/** What is wrong with the key's record, or null when it is published as it should be. */
export async function keyRecordProblem(
  resolve: ResolveFn,
  domain: string,
  key: DkimKey,
): Promise<string | null> {
  const name = `${key.selector}._domainkey.${domain}`;
  const records = (await txt(resolve, name)).filter((r) => tags(r).has('p'));
  if (records.length !== 1) {
    return records.length
      ? `${name} has ${records.length} key records`
      : `${name} has no key record`;
  }
  const t = tags(records[0] ?? '');
  const k = (t.get('k') ?? 'rsa').toLowerCase(); // RFC 6376 §3.6.1: k= defaults to rsa
  const p = t.get('p') ?? '';
  const ours = tags(dkimTxt(key)).get('p') ?? '';
  if (p === '') return `${name} has an empty p=, which revokes the key (RFC 6376 §3.6.1)`;
  if (k !== key.algorithm) return `${name} says k=${k}, but the key on disk is ${key.algorithm}`;
  if (!sameKey(publishedKey(key.algorithm, p), publishedKey(key.algorithm, ours))) {
    return `${name} publishes another key than ${key.file}`;
  }
  return null;
}
