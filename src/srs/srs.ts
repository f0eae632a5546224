/**
 * Sender Rewriting Scheme for forwarded mail (Shevek's SRS, as libsrs2 and
 * postsrsd write it). A message posta forwards leaves with an envelope sender
 * in posta's own domain, so the receiver's SPF check passes, and a bounce to
 * that address finds its way back to the original sender:
 *
 *   SRS0=HASH=TT=orig.domain=orig-local@our.domain
 *   SRS1=HASH=first.domain==HASH=TT=orig.domain=orig-local@our.domain
 *
 * SRS1 is for forwarding an address that is already SRS0 elsewhere: it points
 * at the first forwarder instead of growing. TT is the day (base32, mod 1024);
 * HASH is an HMAC-SHA256 of the rest under the secret, base32, so it survives
 * the lower-casing that local parts get on the way. An address older than
 * MAX_AGE_DAYS or with a wrong hash is refused: nobody can use posta to send
 * bounces to an address of their choosing.
 *
 * Written here because the npm SRS packages (srs, srs.js) are small, years
 * without a release, and use SHA-1 with case-sensitive hashes.
 */
import { localPartOf } from '../address/address.ts';
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { loadSecret } from '../fsutil/secret.ts';

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
const MAX_AGE_DAYS = 21;
const HASH_CHARS = 8;

export const SRS_FILE = 'srs.key';

export type Reversed = { ok: true; address: string } | { ok: false; reason: string };

export function isSrs(local: string): boolean {
  return /^srs[01][=+-]/i.test(local);
}

export class Srs {
  /** A KeyObject: createHmac() takes one in a fifth of the time it takes to prepare a Buffer. */
  private readonly secret: KeyObject;
  private readonly now: () => number;

  constructor(secret: Buffer, now: () => number = Date.now) {
    this.secret = createSecretKey(secret);
    this.now = now;
  }

  /** The envelope sender to use when `ourDomain` forwards mail from `sender`. */
  forward(sender: string, ourDomain: string): string {
    const at = sender.lastIndexOf('@');
    const local = sender.slice(0, at);
    const domain = sender.slice(at + 1).toLowerCase();
    if (domain === ourDomain) return sender;
    const srs0 = /^srs0[=+-](.+)$/i.exec(local);
    const srs1 = /^srs1[=+-]([^=]+)=([^=]*)=(.+)$/i.exec(local);
    if (srs1) {
      // Already SRS1: keep pointing at the first forwarder, with a new hash.
      const [, , first = '', rest = ''] = srs1;
      return `SRS1=${this.hash(first, rest)}=${first}==${rest}@${ourDomain}`;
    }
    if (srs0) {
      const rest = srs0[1] ?? '';
      return `SRS1=${this.hash(domain, rest)}=${domain}==${rest}@${ourDomain}`;
    }
    const tt = this.day();
    return `SRS0=${this.hash(tt, domain, local)}=${tt}=${domain}=${local}@${ourDomain}`;
  }

  /** The address an SRS address stands for, if it is genuine and fresh. */
  reverse(address: string): Reversed {
    const local = localPartOf(address);
    const srs1 = /^srs1[=+-]([a-z2-7]+)=([^=]+)==(.+)$/i.exec(local);
    if (srs1) {
      const [, hash = '', first = '', rest = ''] = srs1;
      if (!this.check(hash, first, rest)) return { ok: false, reason: 'the SRS hash is wrong' };
      return { ok: true, address: `SRS0${rest.startsWith('=') ? '' : '='}${rest}@${first}` };
    }
    const srs0 = /^srs0[=+-]([a-z2-7]+)=([a-z2-7]{2})=([^=]+)=(.+)$/i.exec(local);
    if (!srs0) return { ok: false, reason: 'it is not an SRS address' };
    const [, hash = '', tt = '', domain = '', orig = ''] = srs0;
    if (!this.check(hash, tt, domain, orig)) return { ok: false, reason: 'the SRS hash is wrong' };
    const age = (this.dayNumber() - decodeDay(tt) + 1024) % 1024;
    if (age > MAX_AGE_DAYS) return { ok: false, reason: 'the SRS address has expired' };
    return { ok: true, address: `${orig}@${domain}` };
  }

  private day(): string {
    const d = this.dayNumber();
    return (B32[d >> 5] ?? 'a') + (B32[d & 31] ?? 'a');
  }

  private dayNumber(): number {
    return Math.floor(this.now() / 86400_000) % 1024;
  }

  private hash(...parts: string[]): string {
    const mac = createHmac('sha256', this.secret)
      .update(parts.map((p) => p.toLowerCase()).join('='))
      .digest();
    let out = '';
    for (let i = 0; i < HASH_CHARS; i++) out += B32[(mac[i] ?? 0) & 31];
    return out;
  }

  private check(given: string, ...parts: string[]): boolean {
    const want = Buffer.from(this.hash(...parts));
    const got = Buffer.from(given.toLowerCase());
    return got.length === want.length && timingSafeEqual(got, want);
  }
}

function decodeDay(tt: string): number {
  const t = tt.toLowerCase();
  return B32.indexOf(t[0] ?? 'a') * 32 + B32.indexOf(t[1] ?? 'a');
}

/** The config folder's SRS secret, made on first use (mode 0600). */
export function loadSrsSecret(configDir: string): Promise<Buffer> {
  return loadSecret(join(configDir, SRS_FILE));
}
