/**
 * DKIM signing keys of one domain: domains/DOMAIN/dkim/SELECTOR.ALG.key, PEM
 * (PKCS#8), mode 0600. ALG is "rsa" (RSA-2048, RFC 6376) or "ed25519" (RFC 8463).
 * The selector is in the file name and is the DNS label under _domainkey.
 * New keys get date-based selectors, one per algorithm, so a rotation adds
 * keys beside the old ones: 20261127r (RSA) and 20261127e (Ed25519); a second
 * pair made the same day is 20261127-2r and 20261127-2e.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PostaError } from '../errors.ts';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { makeDirs } from '../fsutil/mkdir.ts';

export type DkimAlgorithm = 'rsa' | 'ed25519';

export interface DkimKey {
  selector: string;
  algorithm: DkimAlgorithm;
  file: string;
  privateKey: KeyObject;
  /** The private key as PEM, as mailauth takes it. */
  pem: string;
}

const FILE = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\.(rsa|ed25519)\.key$/;

export function dateSelector(date: Date, algorithm: DkimAlgorithm, n = 1): string {
  const ymd = date.toISOString().slice(0, 10).replaceAll('-', '');
  return `${ymd}${n > 1 ? `-${n}` : ''}${algorithm === 'rsa' ? 'r' : 'e'}`;
}

export type Selectors = Record<DkimAlgorithm, string>;

/** The first pair of date selectors that no file in the folder uses yet. */
export async function freeSelectors(dkimDir: string, date = new Date()): Promise<Selectors> {
  const used = new Set(
    (await readdir(dkimDir).catch(() => [] as string[])).map((n) => n.split('.')[0]),
  );
  for (let n = 1; ; n++) {
    const pair = { rsa: dateSelector(date, 'rsa', n), ed25519: dateSelector(date, 'ed25519', n) };
    if (!used.has(pair.rsa) && !used.has(pair.ed25519)) return pair;
  }
}

/** Create one RSA-2048 and one Ed25519 key; never replaces an existing file. */
export async function generateKeys(
  dkimDir: string,
  date = new Date(),
  selectors?: Selectors,
): Promise<DkimKey[]> {
  makeDirs(dkimDir, 0o700);
  const names = selectors ?? (await freeSelectors(dkimDir, date));
  const keys: DkimKey[] = [];
  for (const algorithm of ['rsa', 'ed25519'] as const) {
    const selector = names[algorithm];
    const file = join(dkimDir, `${selector}.${algorithm}.key`);
    const { privateKey } =
      algorithm === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const existing = await readdir(dkimDir);
    if (existing.includes(`${selector}.${algorithm}.key`)) {
      throw new PostaError(`${file} already exists; posta never replaces a DKIM key.`);
    }
    await writeFileAtomic(file, pem, 0o600);
    keys.push({ selector, algorithm, file, privateKey, pem });
  }
  return keys;
}

/** Every key in the folder, sorted by selector; errors name the file and the fix. */
export async function loadKeys(dkimDir: string): Promise<DkimKey[]> {
  let names: string[];
  try {
    names = await readdir(dkimDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new PostaError(`Cannot read the DKIM folder ${dkimDir}: ${(err as Error).message}.`);
  }
  const keys: DkimKey[] = [];
  for (const name of names.sort()) {
    const m = FILE.exec(name);
    if (!m) continue;
    const file = join(dkimDir, name);
    const algorithm = m[2] as DkimAlgorithm;
    let pem: string;
    let privateKey: KeyObject;
    try {
      pem = await readFile(file, 'utf8');
      privateKey = createPrivateKey(pem);
    } catch (err) {
      throw new PostaError(
        `The DKIM key ${file} cannot be used (${(err as Error).message}); restore it from your backup or delete it and its DNS record.`,
      );
    }
    const type = privateKey.asymmetricKeyType;
    if (type !== algorithm) {
      throw new PostaError(
        `The DKIM key ${file} is a ${type} key, but its name says ${algorithm}; rename or replace it.`,
      );
    }
    keys.push({ selector: m[1] ?? '', algorithm, file, privateKey, pem });
  }
  return keys;
}

/** The DKIM key record (RFC 6376 §3.6.1; RFC 8463 §4 for the raw Ed25519 key). */
export function dkimTxt(key: DkimKey): string {
  const pub = createPublicKey(key.privateKey);
  const der = pub.export({ type: 'spki', format: 'der' });
  // An Ed25519 SPKI is a fixed 12-byte prefix followed by the 32-byte key.
  const p = key.algorithm === 'ed25519' ? der.subarray(der.length - 32) : der;
  return `v=DKIM1; k=${key.algorithm}; p=${p.toString('base64')}`;
}
