/**
 * A memory of recently verified (account, password) pairs, so that an
 * application that logs in for every message does not pay a full password hash
 * (argon2id, or scrypt for hashes not yet upgraded) each time. Only a keyed HMAC of the
 * password is kept, under a random key that never leaves the process; an entry
 * lasts 15 minutes and dies with a password change (the hash is in the key).
 *
 * The same check started by many sessions at once (an application opening
 * 20 connections) is computed once: the later ones wait for the first.
 */
import { createHmac, createSecretKey, randomBytes } from 'node:crypto';

const TTL_MS = 15 * 60_000;
const MAX = 10_000;

export class VerifiedCache {
  /** A KeyObject: createHmac() takes one in a fifth of the time it takes to prepare a Buffer. */
  private readonly key = createSecretKey(randomBytes(32));
  private readonly entries = new Map<string, number>();
  private readonly running = new Map<string, Promise<boolean>>();

  /** Whether `password` is right for `hash`: remembered, joined to a check running, or `compute`d. */
  verify(
    user: string,
    password: string,
    hash: string,
    compute: () => Promise<boolean>,
  ): Promise<boolean> {
    if (this.has(user, password, hash)) return Promise.resolve(true);
    const id = this.id(user, password, hash);
    let check = this.running.get(id);
    if (!check) {
      check = compute().finally(() => this.running.delete(id));
      this.running.set(id, check);
    }
    return check;
  }

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
