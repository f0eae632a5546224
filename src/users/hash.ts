/**
 * Password hashes in PHC strings. New hashes are argon2id (RFC 9106) from
 * node:crypto:
 *   $argon2id$v=19$m=19456,t=2,p=1$SALT$HASH   (SALT and HASH unpadded base64, as PHC)
 * m = 19 MiB, t = 2, p = 1 is the first of OWASP's equivalent argon2id
 * settings, chosen because it needs the least memory: with the hashing gate
 * (gate.ts) at most a few run at once, so an AUTH flood costs tens of MiB, which
 * a 1 GB VPS survives, where the scrypt N = 2^17 used before cost 128 MiB per
 * attempt. About 40 ms of CPU, on libuv's thread pool.
 *
 * Hashes made before stay valid and are read as well:
 *   $scrypt$ln=17,r=8,p=1$SALT$HASH   (unpadded base64url; RFC 7914)
 * `needsRehash` tells which ones posta replaces on the next good login.
 * Parameters travel with each hash, so changing them later leaves old hashes valid.
 */
import {
  argon2,
  randomBytes,
  scrypt,
  timingSafeEqual,
  type Argon2Parameters,
  type ScryptOptions,
} from 'node:crypto';

export interface Argon2Params {
  /** Memory in KiB. */
  m: number;
  t: number;
  p: number;
}

export const DEFAULT: Argon2Params = { m: 19_456, t: 2, p: 1 };
const KEYLEN = 32;

// What a hand-edited users file may ask for: more than 256 MiB a hash would
// let one line of the file take the server's memory.
const MAX_M = 256 * 1024;

function argon2Async(password: string, salt: Buffer, params: Argon2Params): Promise<Buffer> {
  const parameters: Argon2Parameters = {
    message: password.normalize('NFC'),
    nonce: salt,
    memory: params.m,
    passes: params.t,
    parallelism: params.p,
    tagLength: KEYLEN,
  };
  return new Promise((resolve, reject) => {
    argon2('argon2id', parameters, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function scryptAsync(password: string, salt: Buffer, ln: number, r: number, p: number) {
  const N = 2 ** ln;
  const opts: ScryptOptions = { N, r, p, maxmem: 256 * N * r + 1024 * 1024 };
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEYLEN, opts, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

const b64 = (b: Buffer) => b.toString('base64').replace(/=+$/, '');

export async function hashPassword(password: string, params = DEFAULT): Promise<string> {
  const salt = randomBytes(16);
  const key = await argon2Async(password, salt, params);
  return `$argon2id$v=19$m=${params.m},t=${params.t},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

const ARGON2 =
  /^\$argon2id\$v=19\$m=(\d{1,7}),t=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]{11,})\$([A-Za-z0-9+/]{16,})$/;
const SCRYPT =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

export function isPasswordHash(text: string): boolean {
  return ARGON2.test(text) || SCRYPT.test(text);
}

/** True for a hash not made with today's scheme and parameters: replace it on the next good login. */
export function needsRehash(hash: string): boolean {
  const m = ARGON2.exec(hash);
  return (
    !m || Number(m[1]) !== DEFAULT.m || Number(m[2]) !== DEFAULT.t || Number(m[3]) !== DEFAULT.p
  );
}

/** True for a hash that takes much more memory than today's (scrypt at N >= 2^15: 32 MiB and up). */
export function isHeavy(hash: string): boolean {
  const s = SCRYPT.exec(hash);
  return s !== null && Number(s[1]) >= 15;
}

/** True when `password` matches `hash`; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const got = await derive(password, hash);
  return got !== null && got.want.length === got.key.length && timingSafeEqual(got.want, got.key);
}

async function derive(
  password: string,
  hash: string,
): Promise<{ want: Buffer; key: Buffer } | null> {
  const a = ARGON2.exec(hash);
  if (a) {
    const [m, t, p] = [Number(a[1]), Number(a[2]), Number(a[3])];
    if (m < 8 * p || m > MAX_M || t < 1 || p < 1) return null;
    const want = Buffer.from(a[5] ?? '', 'base64');
    const key = await argon2Async(password, Buffer.from(a[4] ?? '', 'base64'), { m, t, p });
    return { want, key };
  }
  const s = SCRYPT.exec(hash);
  if (!s) return null;
  const [ln, r, p] = [Number(s[1]), Number(s[2]), Number(s[3])];
  if (ln < 10 || ln > 22 || r < 1 || p < 1 || 128 * 2 ** ln * r > MAX_M * 1024) return null;
  const want = Buffer.from(s[5] ?? '', 'base64url');
  const key = await scryptAsync(password, Buffer.from(s[4] ?? '', 'base64url'), ln, r, p);
  return { want, key };
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
