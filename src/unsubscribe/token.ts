/**
 * The unsubscribe token of a (sending domain, recipient) pair: what the
 * List-Unsubscribe URL and mailto: address carry (fields.ts), so that
 * nobody can unsubscribe a third party by making up a URL.
 *
 * token = the first 130 bits of HMAC-SHA256(secret, "v1" NUL domain NUL
 * address), in lower-case base32 (RFC 4648 §6 alphabet): 26 characters, so
 * "unsubscribe+TOKEN" is 38 octets, inside the 64 of a local part (RFC 5321
 * §4.5.3.1.1), and survives a mail system that folds the local part's case.
 * The address is compared lower-cased, as the suppression list compares it.
 * One token per pair: every message to the same recipient carries the same
 * link.
 *
 * The secret (32 random bytes, base64) is DATA/unsubscribe.key, 0600: in the
 * data folder, never the config folder that goes into git. The tokens given
 * out are also kept (links.ts), so a lost secret makes new links only: the
 * old ones still work.
 */
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { loadSecret } from '../fsutil/secret.ts';

export const SECRET_FILE = 'unsubscribe.key';
export const TOKEN_LENGTH = 26;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

export function unsubscribeToken(secret: Buffer, domain: string, address: string): string {
  const mac = createHmac('sha256', secret)
    .update(`v1\0${domain.toLowerCase()}\0${address.toLowerCase()}`)
    .digest();
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of mac) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < TOKEN_LENGTH) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length === TOKEN_LENGTH) break;
    value &= (1 << bits) - 1;
  }
  return out;
}

/** Is `s` shaped like a token (before it is looked up)? Case-insensitive. */
export function isToken(s: string): boolean {
  return new RegExp(`^[a-z2-7]{${TOKEN_LENGTH}}$`, 'i').test(s);
}

/** The server's secret, made on first use. */
export function loadUnsubscribeSecret(dataDir: string): Promise<Buffer> {
  return loadSecret(join(dataDir, SECRET_FILE));
}
