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

export function createResolver(servers: readonly Endpoint[]): Resolver {
  const r = new NodeResolver({ timeout: 5000, tries: 2 });
  if (servers.length) r.setServers(servers.map(formatEndpoint));
  return {
    resolve: (name, rrtype) => r.resolve(name, rrtype),
    mx: (name) => r.resolveMx(name),
    async addresses(name, family) {
      try {
        return family === 4 ? await r.resolve4(name) : await r.resolve6(name);
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
