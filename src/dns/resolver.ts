/**
 * DNS for delivery and verification: one resolver built from `[dns] servers`
 * (or the system's /etc/resolv.conf), passed to whoever needs DNS.
 *
 * The shape is mailauth's injected resolver, `resolve(name, rrtype)`, as
 * node:dns's `Resolver#resolve` has it, so the same object serves MX lookup,
 * MTA-STS discovery and, later, SPF/DKIM/DMARC checks.
 *
 * Failures are told apart by `dnsFailure()`: a name that does not exist
 * (NXDOMAIN) is permanent, a name without records of the type (NODATA) is an
 * empty answer, and everything else (SERVFAIL, timeouts, refused) is temporary.
 *
 * Answers are cached for CACHE_MS (and "does not exist" for NEGATIVE_MS; RFC
 * 2308), since node:dns keeps no cache and each delivery asks for MX, A and
 * AAAA; temporary failures are never cached. A server with a caching resolver
 * on the machine loses nothing by this; one without gains a lot.
 */
import { Resolver as NodeResolver } from 'node:dns/promises';
import type { Endpoint } from '../config/endpoint.ts';
import { formatEndpoint } from '../config/endpoint.ts';

export type ResolveFn = (name: string, rrtype: string) => Promise<unknown>;

export interface Resolver {
  resolve: ResolveFn;
  mx(name: string): Promise<{ exchange: string; priority: number }[]>;
  addresses(name: string, family: 4 | 6): Promise<string[]>;
}

export type DnsFailure = 'nxdomain' | 'nodata' | 'temporary';

export function dnsFailure(err: unknown): DnsFailure {
  const code = (err as { code?: string }).code;
  if (code === 'ENOTFOUND') return 'nxdomain';
  if (code === 'ENODATA') return 'nodata';
  return 'temporary';
}

const CACHE_MS = 60_000;
const NEGATIVE_MS = 30_000;
const CACHE_ENTRIES = 10_000;

export function createResolver(servers: readonly Endpoint[], now = Date.now): Resolver {
  const r = new NodeResolver({ timeout: 5000, tries: 2 });
  if (servers.length) r.setServers(servers.map(formatEndpoint));
  const cache = new Map<string, { until: number; answer: Promise<unknown> }>();
  const cached = <T>(key: string, ask: () => Promise<T>): Promise<T> => {
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.answer as Promise<T>;
    const answer = ask();
    if (cache.size >= CACHE_ENTRIES) cache.clear();
    cache.set(key, { until: now() + CACHE_MS, answer });
    answer.catch((err: unknown) => {
      if (dnsFailure(err) === 'temporary') cache.delete(key);
      else cache.set(key, { until: now() + NEGATIVE_MS, answer });
    });
    return answer;
  };
  const resolve = (name: string, rrtype: string) =>
    cached(`${rrtype} ${name.toLowerCase()}`, () => r.resolve(name, rrtype));
  return {
    resolve,
    mx: (name) => resolve(name, 'MX') as Promise<{ exchange: string; priority: number }[]>,
    async addresses(name, family) {
      try {
        return (await resolve(name, family === 4 ? 'A' : 'AAAA')) as string[];
      } catch (err) {
        if (dnsFailure(err) === 'nodata') return [];
        throw err;
      }
    },
  };
}

/** A resolver that never sends a query: the sandbox must not talk to the world. */
export function offlineResolver(): Resolver {
  const refuse = () =>
    Promise.reject(Object.assign(new Error('DNS is off in the sandbox'), { code: 'ECONNREFUSED' }));
  return { resolve: refuse, mx: refuse, addresses: refuse };
}
