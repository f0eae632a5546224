/**
 * Password hashes: scrypt from node:crypto (RFC 7914) in a PHC-style string,
 *   $scrypt$ln=17,r=8,p=1$SALT$HASH   (SALT and HASH unpadded base64)
 * N = 2^17, r = 8, p = 1 is OWASP's recommendation for scrypt: ~128 MiB and a
 * few hundred milliseconds per hash, run on libuv's thread pool so the event
 * loop stays free. Parameters travel with each hash, so raising them later
 * leaves existing hashes valid.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const DEFAULT = { ln: 17, r: 8, p: 1 };
const KEYLEN = 32;

function scryptAsync(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEYLEN, opts, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function options(ln: number, r: number, p: number): ScryptOptions {
  const N = 2 ** ln;
  return { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
}

export async function hashPassword(password: string, params = DEFAULT): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(password, salt, options(params.ln, params.r, params.p));
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

const FORMAT =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

export function isPasswordHash(text: string): boolean {
  return FORMAT.test(text);
}

/** True when `password` matches `hash`; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = FORMAT.exec(hash);
  if (!m) return false;
  const [ln, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (ln < 10 || ln > 22 || r < 1 || p < 1) return false;
  const want = Buffer.from(m[5] ?? '', 'base64url');
  const got = await scryptAsync(password, Buffer.from(m[4] ?? '', 'base64url'), options(ln, r, p));
  return want.length === got.length && timingSafeEqual(want, got);
}

// A hash of a password nobody knows, verified when there is no account, so a
// failure takes the same time whether or not the account exists.
let dummy: Promise<string> | null = null;

/** Verify `password` against `hash`, or spend the same time and fail when there is none. */
export async function verifyOrDelay(password: string, hash: string | undefined): Promise<boolean> {
  dummy ??= hashPassword('posta dummy password');
  const ok = await verifyPassword(password, hash ?? (await dummy));
  return hash !== undefined && ok;
}
