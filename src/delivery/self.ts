/**
 * Is an MX host this server? RFC 5321 §5.1: a client that finds itself in
 * the MX list discards that MX and every one of lower preference; when that
 * leaves none, the mail would loop back to itself, which is an error.
 *
 * "Itself" is the hostname, and the addresses posta listens on for SMTP (all
 * the machine's interface addresses when it listens on a wildcard) or sends
 * from.
 */
import { networkInterfaces } from 'node:os';
import type { Endpoint } from '../config/endpoint.ts';
import type { Host } from './route.ts';

export interface Self {
  hostname: string;
  addresses: ReadonlySet<string>;
}

export function selfOf(hostname: string, listen: readonly Endpoint[], sources: string[]): Self {
  const addresses = new Set<string>(sources.filter((a) => a !== ''));
  for (const e of listen) {
    if (e.host === '0.0.0.0' || e.host === '::') {
      for (const list of Object.values(networkInterfaces())) {
        for (const i of list ?? []) addresses.add(i.address.toLowerCase());
      }
    } else addresses.add(e.host.toLowerCase());
  }
  return { hostname: hostname.toLowerCase(), addresses };
}

function isSelf(host: Host, self: Self): boolean {
  return host.name === self.hostname || host.addresses.some((a) => self.addresses.has(a));
}

/**
 * RFC 5321 §5.1: the hosts left once this server and those it is preferred
 * to (its preference or a higher number) are dropped; `looped` when it was
 * in the list.
 */
export function withoutSelf(hosts: Host[], self: Self): { hosts: Host[]; looped: boolean } {
  const mine = hosts.find((h) => isSelf(h, self));
  if (!mine) return { hosts, looped: false };
  return { hosts: hosts.filter((h) => h.priority < mine.priority), looped: true };
}
