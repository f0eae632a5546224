/**
 * A memory of recently verified (account, password) pairs, so that an
 * application that logs in for every message does not pay a full password hash
 * (argon2id, or scrypt for hashes not yet upgraded) each time. Only a keyed HMAC of the
 * password is kept, under a random key that never leaves the process; an entry
 * lasts 15 minutes and dies with a password change (the hash is in the key).
 */
import { createHmac, randomBytes } from 'node:crypto';

const TTL_MS = 15 * 60_000;
const MAX = 10_000;

export class VerifiedCache {
  private readonly key = randomBytes(32);
  private readonly entries = new Map<string, number>();

  private id(user: string, password: string, hash: string): string {
    return createHmac('sha256', this.key).update(`${user}\0${hash}\0${password}`).digest('base64');
  }

  has(user: string, password: string, hash: string): boolean {
    const id = this.id(user, password, hash);
    const t = this.entries.get(id);
    if (t === undefined) return false;
    if (Date.now() - t > TTL_MS) {
      this.entries.delete(id);
      return false;
    }
    return true;
  }

  add(user: string, password: string, hash: string): void {
    if (this.entries.size >= MAX) this.entries.clear();
    this.entries.set(this.id(user, password, hash), Date.now());
  }
}
