/**
 * Throttling of AUTH attempts, in the spirit of mox: attempts are counted in
 * a sliding minute per client address and per wider prefix (an attacker with
 * a whole /24 or /48 gets more, but not unbounded, tries), and per account
 * name. Past a limit, AUTH is refused before the password is even checked.
 * The answer never depends on whether the account exists.
 *
 * An attempt is counted when it starts (`begin` reserves a slot under every
 * limit before the password is hashed), so parallel attempts cannot overrun a
 * limit while their hashes run; a success gives its slots back, a failure
 * keeps them for the minute. Only failures refuse: an attempt that finds a
 * limit taken up by attempts still in progress waits for them to end (an
 * application opening 20 connections at once with the right password must
 * not be refused), and is refused only if they failed.
 *
 * The per-account limit must not let anyone lock the owner out: a source
 * (its /24, or /64 for IPv6) that logged in to an account is remembered for
 * TRUST_MS (30 days from its last login, in memory, at most MAX_TRUSTED
 * pairs, the least recently used forgotten first) and is not held to that
 * account's limit. The per-source limits hold for everyone.
 */
import { isIPv4 } from 'node:net';
import { clientNetwork, ipv6Groups } from '../address/ip.ts';

const WINDOW_MS = 60_000;
export const TRUST_MS = 30 * 24 * 3600_000;
const MAX_TRUSTED = 10_000;

// [prefix length, attempts allowed per minute] for IPv4 and IPv6.
const V4 = [
  [32, 10],
  [24, 30],
  [16, 90],
] as const;
const V6 = [
  [64, 10],
  [48, 30],
  [32, 90],
] as const;
export const PER_ACCOUNT = 20;

/** One attempt in progress: say how it ended. */
export interface Attempt {
  /** The password was right: give the slots back and remember the source. */
  succeeded(): void;
  /** The password was wrong: the slots stay taken for the minute. */
  failed(): void;
  /** The attempt was never checked (the server was busy): give the slots back. */
  cancelled(): void;
}

/** Attempts waiting for others to end, over all clients; past it, begin() says busy. */
const MAX_WAITING = 256;

export class AuthThrottle {
  private readonly attempts = new Map<string, number[]>();
  /** Of `attempts`, those still in progress, per key. */
  private readonly pending = new Map<string, number>();
  private waiting: (() => void)[] = [];
  private readonly trusted = new Map<string, number>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /**
   * Reserve an attempt for this client and account: null when it has failed
   * too often to try now, 'busy' when too many attempts wait already.
   */
  async begin(ip: string, account: string): Promise<Attempt | null | 'busy'> {
    for (;;) {
      const keys = this.keys(ip, account);
      const counts = keys.map(([key, limit]): [number, number, number] => [
        this.count(key),
        this.pending.get(key) ?? 0,
        limit,
      ]);
      if (counts.some(([n, p, limit]) => n - p >= limit)) return null;
      if (!counts.some(([n, , limit]) => n >= limit)) return this.reserve(ip, account, keys);
      // the limit is taken up by attempts in progress: wait for one to end
      if (this.waiting.length >= MAX_WAITING) return 'busy';
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private reserve(ip: string, account: string, keys: [string, number][]): Attempt {
    const t = this.now();
    for (const [key] of keys) {
      const list = this.attempts.get(key) ?? [];
      list.push(t);
      this.attempts.set(key, list);
      this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
    }
    if (this.attempts.size > 100_000) this.prune();
    let settled = false;
    const settle = (release: boolean) => {
      if (settled) return;
      settled = true;
      for (const [key] of keys) {
        const p = (this.pending.get(key) ?? 1) - 1;
        if (p > 0) this.pending.set(key, p);
        else this.pending.delete(key);
        if (!release) continue;
        const list = this.attempts.get(key);
        const at = list?.indexOf(t) ?? -1;
        if (list && at >= 0) list.splice(at, 1);
      }
      const woken = this.waiting;
      this.waiting = [];
      for (const wake of woken) wake();
    };
    return {
      succeeded: () => {
        settle(true);
        this.trust(ip, account);
      },
      failed: () => settle(false),
      cancelled: () => settle(true),
    };
  }

  private trust(ip: string, account: string): void {
    const key = this.trustKey(ip, account);
    this.trusted.delete(key); // re-inserted last: the map's order is least recently used first
    this.trusted.set(key, this.now() + TRUST_MS);
    for (const old of this.trusted.keys()) {
      if (this.trusted.size <= MAX_TRUSTED) break;
      this.trusted.delete(old);
    }
  }

  private isTrusted(ip: string, account: string): boolean {
    const key = this.trustKey(ip, account);
    const until = this.trusted.get(key);
    if (until !== undefined && until <= this.now()) this.trusted.delete(key);
    return until !== undefined && until > this.now();
  }

  private trustKey(ip: string, account: string): string {
    return `${account.toLowerCase()}\0${clientNetwork(ip)}`;
  }

  private count(key: string): number {
    const since = this.now() - WINDOW_MS;
    const list = (this.attempts.get(key) ?? []).filter((t) => t > since);
    if (list.length) this.attempts.set(key, list);
    else this.attempts.delete(key);
    return list.length;
  }

  private prune(): void {
    for (const key of [...this.attempts.keys()]) this.count(key);
  }

  private keys(ip: string, account: string): [string, number][] {
    const { addr, v4 } = plain(ip);
    const prefixes = (v4 ? V4 : V6).map(
      ([len, limit]) => [`ip:${prefix(addr, len, v4)}/${len}`, limit] as [string, number],
    );
    if (this.isTrusted(ip, account)) return prefixes;
    return [...prefixes, [`account:${account.toLowerCase()}`, PER_ACCOUNT]];
  }
}

function plain(ip: string): { addr: string; v4: boolean } {
  const addr = ip.replace(/^::ffff:/, '');
  return { addr, v4: isIPv4(addr) };
}

function prefix(ip: string, len: number, v4: boolean): string {
  if (v4)
    return ip
      .split('.')
      .slice(0, len / 8)
      .join('.');
  return ipv6Groups(ip)
    .slice(0, len / 16)
    .join(':');
}
