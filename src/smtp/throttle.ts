/**
 * Throttling of failed AUTH attempts, in the spirit of mox: failures are
 * counted in a sliding minute per client address and per wider prefix (an
 * attacker with a whole /24 or /48 gets more, but not unbounded, tries), and
 * per account name. Past a limit, AUTH is refused before the password is even
 * checked. The answer never depends on whether the account exists.
 */
import { isIPv4 } from 'node:net';
import { ipv6Groups } from '../address/ip.ts';

const WINDOW_MS = 60_000;

// [prefix length, failures allowed per minute] for IPv4 and IPv6.
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
const PER_ACCOUNT = 20;

export class AuthThrottle {
  private readonly failures = new Map<string, number[]>();
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** True when this client or account has failed too often to try again now. */
  blocked(ip: string, account: string): boolean {
    return this.keys(ip, account).some(([key, limit]) => this.count(key) >= limit);
  }

  fail(ip: string, account: string): void {
    const t = this.now();
    for (const [key] of this.keys(ip, account)) {
      const list = this.failures.get(key) ?? [];
      list.push(t);
      this.failures.set(key, list);
    }
    if (this.failures.size > 100_000) this.prune();
  }

  private count(key: string): number {
    const since = this.now() - WINDOW_MS;
    const list = (this.failures.get(key) ?? []).filter((t) => t > since);
    if (list.length) this.failures.set(key, list);
    else this.failures.delete(key);
    return list.length;
  }

  private prune(): void {
    for (const key of [...this.failures.keys()]) this.count(key);
  }

  private keys(ip: string, account: string): [string, number][] {
    const v4 = isIPv4(ip.replace(/^::ffff:/, ''));
    const addr = ip.replace(/^::ffff:/, '');
    const prefixes = (v4 ? V4 : V6).map(
      ([len, limit]) => [`ip:${prefix(addr, len, v4)}/${len}`, limit] as [string, number],
    );
    return [...prefixes, [`account:${account.toLowerCase()}`, PER_ACCOUNT]];
  }
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
