/**
 * Access keys: the credentials applications send with, through the SES APIs
 * (SigV4, api/sigv4.ts), the Resend API (Bearer) and SMTP AUTH on 587/465,
 * so one credential serves every path, as SES's SMTP credentials do.
 *
 * A key has an id ("AKPS" and 16 base32 characters, shaped like an AWS
 * access key id), a secret (40 characters), a name, the domains it may send
 * from, and its quota: messages (recipients) per second and per 24 hours.
 *
 * The Resend API takes one Bearer token in place of an id and a secret:
 * "re_" + id + "_" + secret. Resend's keys start with "re_" (secret
 * scanners and some applications' settings checks look for it); the id has
 * a fixed shape without "_", so the token splits one way only although the
 * secret (base64url) may hold "_".
 *
 * SigV4 needs the secret itself to recompute signatures, so it cannot be
 * hashed like a password. Keys live in the data folder's queue.db (0600, the
 * server's user only), never in the config folder that goes into git; they
 * are backed up with the data folder. A revoked key keeps its row, without
 * its secret, so `posta key list` still shows it.
 *
 * Table api_keys (queue.db): id, secret, name, domains (JSON array), rate,
 * daily, created_at, revoked_at.
 */
import { randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { prepared, type Db } from '../db/db.ts';

export interface ApiKey {
  id: string;
  name: string;
  /** The domains it may send from (A-labels, lower case). */
  domains: string[];
  /** Recipients per second. */
  rate: number;
  /** Recipients per 24 hours. */
  daily: number;
  createdAt: number;
  revokedAt: number | null;
}

/** SES's starting production quota; a new IP should warm up slowly anyway. */
export const DEFAULT_RATE = 14;
export const DEFAULT_DAILY = 50_000;

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function newKeyId(): string {
  let id = 'AKPS';
  for (let i = 0; i < 16; i++) id += BASE32[randomInt(32)];
  return id;
}

/** Looks like one of ours: SMTP AUTH tells keys from account addresses by it. */
export function isKeyId(s: string): boolean {
  return /^AKPS[A-Z2-7]{16}$/.test(s);
}

/**
 * May the key send from this domain: one of its domains, and still one of
 * this server's (a domain removed from the config folder stops at once).
 * The one rule of every path a key sends by (api/send.ts, smtp/policy.ts).
 */
export function keyMaySendFrom(
  key: ApiKey,
  domain: string,
  isLocal: (domain: string) => boolean,
): boolean {
  return key.domains.includes(domain) && isLocal(domain);
}

/** The Resend API key (Bearer token) of a key. */
export function resendToken(id: string, secret: string): string {
  return `re_${id}_${secret}`;
}

/** The id and secret of a Resend API key, or null when it is not of that form. */
export function parseResendToken(token: string): { id: string; secret: string } | null {
  const m = /^re_(AKPS[A-Z2-7]{16})_([A-Za-z0-9_-]+)$/.exec(token);
  return m ? { id: m[1] ?? '', secret: m[2] ?? '' } : null;
}

interface KeyRow {
  id: string;
  secret: string;
  name: string;
  domains: string;
  rate: number;
  daily: number;
  created_at: number;
  revoked_at: number | null;
}

function fromRow(r: KeyRow): ApiKey {
  return {
    id: r.id,
    name: r.name,
    domains: JSON.parse(r.domains) as string[],
    rate: r.rate,
    daily: r.daily,
    createdAt: r.created_at,
    revokedAt: r.revoked_at,
  };
}

export class KeyStore {
  private readonly db: Db;
  constructor(db: Db) {
    this.db = db;
  }

  create(o: { name: string; domains: string[]; rate: number; daily: number }): {
    key: ApiKey;
    secret: string;
  } {
    const id = newKeyId();
    let secret = randomBytes(30).toString('base64url');
    // one in 64 would start with '-', which swaks, curl and `posta send` take for an option
    while (secret.startsWith('-')) secret = randomBytes(30).toString('base64url');
    const now = Date.now();
    prepared(
      this.db,
      'INSERT INTO api_keys (id, secret, name, domains, rate, daily, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ).run(id, secret, o.name, JSON.stringify(o.domains), o.rate, o.daily, now);
    return { key: { id, ...o, createdAt: now, revokedAt: null }, secret };
  }

  list(): ApiKey[] {
    const rows = prepared(this.db, 'SELECT * FROM api_keys ORDER BY created_at, id').all();
    return (rows as unknown as KeyRow[]).map(fromRow);
  }

  /** A key in use (not revoked), or undefined. */
  get(id: string): ApiKey | undefined {
    const r = prepared(this.db, 'SELECT * FROM api_keys WHERE id = ? AND revoked_at IS NULL').get(
      id,
    ) as KeyRow | undefined;
    return r && fromRow(r);
  }

  /** The secret of a key in use, for SigV4. */
  secret(id: string): string | undefined {
    const r = prepared(
      this.db,
      'SELECT secret FROM api_keys WHERE id = ? AND revoked_at IS NULL',
    ).get(id) as { secret: string } | undefined;
    return r?.secret;
  }

  /** The key whose id and secret these are (SMTP AUTH, Bearer), in constant time per secret. */
  check(id: string, secret: string): ApiKey | undefined {
    const ours = this.secret(id);
    if (ours === undefined) return undefined;
    const [a, b] = [Buffer.from(ours), Buffer.from(secret)];
    return a.length === b.length && timingSafeEqual(a, b) ? this.get(id) : undefined;
  }

  /** False when there is no such key in use. */
  revoke(id: string): boolean {
    const r = prepared(
      this.db,
      "UPDATE api_keys SET revoked_at = ?, secret = '' WHERE id = ? AND revoked_at IS NULL",
    ).run(Date.now(), id);
    return r.changes > 0;
  }
}
