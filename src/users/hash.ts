/**
 * Password hashes: scrypt from node:crypto (RFC 7914) in a PHC-style string,
 *   $scrypt$ln=14,r=8,p=5$SALT$HASH   (SALT and HASH unpadded base64)
 * N = 2^14, r = 8, p = 5 is one of OWASP's equally strong scrypt settings
 * (beside N = 2^17, p = 1): 16 MiB instead of 128 MiB per hash, so a burst of
 * logins does not take hundreds of MiB, for the same defence. It runs on
 * libuv's thread pool so the event loop stays free. Parameters travel with
 * each hash, so hashes made with other ones stay valid.
 *
 * Memory is bounded: hashes run at once only while their scrypt memory
 * stays within MEMORY_BUDGET (a bigger one runs alone), and the same
 * password checked against the same hash by several sessions at once (an
 * application opening 20 connections) is computed once.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const DEFAULT = { ln: 14, r: 8, p: 5 };
const MEMORY_BUDGET = 64 * 1024 * 1024;
const KEYLEN = 32;

let inUse = 0;
const waiting: { bytes: number; start: () => void }[] = [];

const fits = (bytes: number) => inUse === 0 || inUse + bytes <= MEMORY_BUDGET;

/** Runs `fn` once its memory fits beside the hashes running (or nothing runs), in order of arrival. */
async function withMemory<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
  // A waiter is woken with its memory already counted.
  if (waiting.length || !fits(bytes))
    await new Promise<void>((start) => waiting.push({ bytes, start }));
  else inUse += bytes;
  try {
    return await fn();
  } finally {
    inUse -= bytes;
    while (waiting[0] && fits(waiting[0].bytes)) {
      const next = waiting.shift()!;
      inUse += next.bytes;
      next.start();
    }
  }
}

function scryptAsync(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  const bytes = 128 * (opts.N ?? 0) * (opts.r ?? 0);
  return withMemory(
    bytes,
    () =>
      new Promise((resolve, reject) => {
        scrypt(password.normalize('NFC'), salt, KEYLEN, opts, (err, key) =>
          err ? reject(err) : resolve(key),
        );
      }),
  );
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

const inFlight = new Map<string, Promise<boolean>>();

/** True when `password` matches `hash`; false for a wrong password or a malformed hash. */
export function verifyPassword(password: string, hash: string): Promise<boolean> {
  const id = `${hash}\0${password}`;
  let p = inFlight.get(id);
  if (!p) {
    p = check(password, hash).finally(() => inFlight.delete(id));
    inFlight.set(id, p);
  }
  return p;
}

async function check(password: string, hash: string): Promise<boolean> {
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
