/**
 * What every dashboard request passes before a page sees it. Loopback is no
 * boundary on its own: any web page the admin's browser opens can POST to
 * 127.0.0.1, and DNS rebinding lets a page read loopback answers under its
 * own name. So:
 * - the Host header must name this server (loopback names, the hostname, a
 *   listener's address), which defeats rebinding;
 * - an unsafe method needs `Sec-Fetch-Site: same-origin` (or `none`), or,
 *   from a browser too old to send that, an Origin equal to this one,
 *   whatever its content type (hono/csrf checks only form types); a client
 *   that sends neither header is no browser;
 * - pages need a session cookie (HttpOnly, SameSite=Strict), and an unsafe
 *   request the session's own token as well (sessions.ts);
 * - failed logins are limited per client address (LoginLimiter).
 */
import { isIP } from 'node:net';
import { clientHost } from '../../address/ip.ts';

const SAFE = new Set(['GET', 'HEAD']);

/** The host names a request may give: loopback, the server's names, its listeners' addresses. */
export function allowedHosts(names: readonly string[]): Set<string> {
  const hosts = new Set(['localhost', '127.0.0.1', '::1']);
  for (const n of names) if (n && n !== '0.0.0.0' && n !== '::') hosts.add(n.toLowerCase());
  return hosts;
}

/** The name in a Host header, without its port or brackets. */
export function hostName(header: string | undefined): string {
  const h = (header ?? '').trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') < 0 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon >= 0 && isIP(h) !== 6 ? h.slice(0, colon) : h;
}

export type Refusal = { status: 403 | 421; text: string } | null;

/** Why a request must be refused before any page or session sees it, or null. */
export function refuse(req: {
  method: string;
  host: string | undefined;
  origin: string | undefined;
  fetchSite: string | undefined;
  scheme: 'http' | 'https';
  hosts: Set<string>;
}): Refusal {
  if (!req.hosts.has(hostName(req.host))) {
    return { status: 421, text: `This server does not answer for the host "${req.host ?? ''}".` };
  }
  if (SAFE.has(req.method)) return null;
  // as Go's CrossOriginProtection: Sec-Fetch-Site when the browser sends it, else Origin
  const site = req.fetchSite?.toLowerCase();
  if (site !== undefined) {
    if (site === 'same-origin' || site === 'none') return null;
    return { status: 403, text: 'A request from another site is refused.' };
  }
  if (req.origin !== undefined && req.origin !== `${req.scheme}://${req.host ?? ''}`) {
    return { status: 403, text: 'A request from another origin is refused.' };
  }
  return null;
}

/**
 * Failed logins, in a sliding WINDOW_MS: at most LIMIT per client and login
 * name, and CLIENT_LIMIT per client over all names, so that cycling through
 * names buys no more guesses. A client is its address, or its /64 for IPv6
 * (one host may hold a whole /64). Bounded to MAX_KEYS keys: when full, the
 * keys with no failure left in the window go first, then the longest quiet
 * that make no client wait; only when thousands of clients all wait at once
 * do the oldest of those go too.
 */
export class LoginLimiter {
  static readonly LIMIT = 5;
  static readonly CLIENT_LIMIT = 20;
  static readonly WINDOW_MS = 5 * 60_000;
  static readonly MAX_KEYS = 10_000;
  /** Per key its most recent failures, oldest first, at most its limit; most recently failed last. */
  private readonly failures = new Map<string, number[]>();

  /** How many keys the table holds: at most MAX_KEYS. */
  get size(): number {
    return this.failures.size;
  }

  /** Milliseconds until `client` may try `login` again, or 0. */
  wait(client: string, login: string, now = Date.now()): number {
    return Math.max(this.waitOf(pairKey(client, login), now), this.waitOf(clientKey(client), now));
  }

  failed(client: string, login: string, now = Date.now()): void {
    this.add(pairKey(client, login), now);
    this.add(clientKey(client), now);
  }

  /** Forgets only this login's failures: an account cannot clear its client's guesses at others. */
  succeeded(client: string, login: string): void {
    this.failures.delete(pairKey(client, login));
  }

  private waitOf(key: string, now: number): number {
    const recent = this.recent(key, now);
    if (recent.length < limitOf(key)) return 0;
    return (recent[0] ?? now) + LoginLimiter.WINDOW_MS - now;
  }

  private add(key: string, now: number): void {
    const recent = [...this.recent(key, now), now].slice(-limitOf(key));
    this.failures.delete(key); // set() again puts it last: the most recently failed
    this.failures.set(key, recent);
    if (this.failures.size > LoginLimiter.MAX_KEYS) this.evict(now);
  }

  /** Down to 90% of MAX_KEYS, so that the walk runs once per thousand new keys, not for each. */
  private evict(now: number): void {
    const target = LoginLimiter.MAX_KEYS * 0.9;
    for (const key of this.failures.keys()) {
      if (this.recent(key, now).length === 0) this.failures.delete(key);
    }
    for (const key of this.failures.keys()) {
      if (this.failures.size <= target) return;
      if (this.waitOf(key, now) === 0) this.failures.delete(key);
    }
    // thousands of clients all waiting at once: the oldest go, so memory and
    // this walk stay bounded (such an attacker could wait out the window anyway)
    for (const key of this.failures.keys()) {
      if (this.failures.size <= target) return;
      this.failures.delete(key);
    }
  }

  private recent(key: string, now: number): number[] {
    return (this.failures.get(key) ?? []).filter((t) => t > now - LoginLimiter.WINDOW_MS);
  }
}

const clientKey = (address: string) => `c ${clientHost(address)}`;
const pairKey = (address: string, login: string) =>
  `p ${clientHost(address)} ${login.slice(0, 320)}`;

function limitOf(key: string): number {
  return key.startsWith('c ') ? LoginLimiter.CLIENT_LIMIT : LoginLimiter.LIMIT;
}
