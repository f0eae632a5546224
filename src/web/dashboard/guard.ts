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

/** At most LIMIT failed logins per client address in WINDOW_MS. */
export class LoginLimiter {
  static readonly LIMIT = 5;
  static readonly WINDOW_MS = 5 * 60_000;
  private readonly failures = new Map<string, number[]>();

  /** Milliseconds until `ip` may try again, or 0. */
  wait(ip: string, now = Date.now()): number {
    const recent = this.recent(ip, now);
    if (recent.length < LoginLimiter.LIMIT) return 0;
    return (recent[0] ?? now) + LoginLimiter.WINDOW_MS - now;
  }

  failed(ip: string, now = Date.now()): void {
    // bounded: a flood from many addresses forgets the oldest first
    if (this.failures.size >= 10_000) {
      const first = this.failures.keys().next().value;
      if (first !== undefined) this.failures.delete(first);
    }
    this.failures.set(ip, [...this.recent(ip, now), now]);
  }

  succeeded(ip: string): void {
    this.failures.delete(ip);
  }

  private recent(ip: string, now: number): number[] {
    return (this.failures.get(ip) ?? []).filter((t) => t > now - LoginLimiter.WINDOW_MS);
  }
}
