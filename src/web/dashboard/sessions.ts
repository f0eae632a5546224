/**
 * The dashboard's logins: one-time login links (`posta admin link`, and
 * `posta dev` at start) and the sessions a login opens, the admin's or an
 * account's, in the queue's
 * database so a link made by the CLI works in the running server and a
 * session outlives a restart. Only the SHA-256 of a token is stored: a copy
 * of the database opens no session. Each session has its own token for
 * unsafe requests (guard.ts), which a cross-site page cannot read. An
 * account's session keeps a digest of the password hash it logged in with
 * (credentialOf): once the account's password changes or the account goes,
 * by the dashboard, `posta user` or an edit of the users file, the session
 * opens nothing.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../../db/db.ts';

/** How long a login link stays good. */
export const LINK_TTL_MS = 15 * 60_000;
/** How long a session lasts without a new login, as mox's admin sessions. */
export const SESSION_TTL_MS = 12 * 3600_000;

const hashOf = (token: string) => createHash('sha256').update(token).digest('hex');
const newToken = () => randomBytes(32).toString('base64url');

function prune(db: Db, now: number): void {
  db.prepare('DELETE FROM admin_tokens WHERE expires_at <= ?').run(now);
}

/** A new one-time login link's token. */
export function createLink(db: Db, now = Date.now()): string {
  prune(db, now);
  const token = newToken();
  db.prepare("INSERT INTO admin_tokens (hash, kind, expires_at) VALUES (?, 'link', ?)").run(
    hashOf(token),
    now + LINK_TTL_MS,
  );
  return token;
}

/** Uses up a login link: true once, for a link not yet used nor expired. */
export function redeemLink(db: Db, token: string, now = Date.now()): boolean {
  const r = db
    .prepare("DELETE FROM admin_tokens WHERE hash = ? AND kind = 'link' AND expires_at > ?")
    .run(hashOf(token), now);
  return Number(r.changes) === 1;
}

export interface Session {
  token: string;
  /** The token each unsafe request must carry (guard.ts). */
  csrf: string;
  /** An account's session (it sees only its own mail); null: the admin's. */
  account: string | null;
  /** An account's session: credentialOf(the hash it logged in with); null for the admin's. */
  credential: string | null;
}

/** What a session keeps of an account's password hash: a digest, not the hash. */
export const credentialOf = (passwordHash: string) => hashOf(passwordHash);

export function createSession(
  db: Db,
  now = Date.now(),
  account: { address: string; passwordHash: string } | null = null,
): Session {
  prune(db, now);
  const s = {
    token: newToken(),
    csrf: newToken(),
    account: account?.address ?? null,
    credential: account ? credentialOf(account.passwordHash) : null,
  };
  db.prepare(
    "INSERT INTO admin_tokens (hash, kind, csrf, account, credential, expires_at) VALUES (?, 'session', ?, ?, ?, ?)",
  ).run(hashOf(s.token), s.csrf, s.account, s.credential, now + SESSION_TTL_MS);
  return s;
}

/** The session of a cookie's token, or null when there is none (ended, expired, made up). */
export function findSession(db: Db, token: string, now = Date.now()): Session | null {
  const row = db
    .prepare(
      "SELECT csrf, account, credential FROM admin_tokens WHERE hash = ? AND kind = 'session' AND expires_at > ?",
    )
    .get(hashOf(token), now) as
    { csrf: string; account: string | null; credential: string | null } | undefined;
  return row ? { token, csrf: row.csrf, account: row.account, credential: row.credential } : null;
}

export function endSession(db: Db, token: string): void {
  db.prepare("DELETE FROM admin_tokens WHERE hash = ? AND kind = 'session'").run(hashOf(token));
}

/** Compares a request's token with the session's in constant time. */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
