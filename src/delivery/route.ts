/**
 * Where mail for a domain goes: the ordered list of hosts and addresses to try.
 *
 * - RFC 5321 §5.1: MX records in preference order (equal preferences shuffled);
 *   no MX records at all means the domain itself is the only host (implicit MX).
 * - RFC 7505: a single MX of "." is a null MX: the domain takes no mail, so
 *   delivery fails permanently at once.
 * - A domain that does not exist (NXDOMAIN) fails permanently; a DNS server
 *   that fails (SERVFAIL, timeout) and a CNAME loop only defer.
 * - Each host's addresses are ordered by `[delivery] ip_family`; the families
 *   not wanted are left out.
 */
import type { IpFamily } from '../config/load.ts';
import { dnsFailure, type Resolver } from '../dns/resolver.ts';
import { local, type Outcome } from './outcome.ts';

export interface Host {
  name: string;
  addresses: string[];
  /** The MX preference (0 for an implicit MX). */
  priority: number;
}

export type Route =
  { kind: 'hosts'; hosts: Host[]; implicit: boolean } | { kind: 'fail'; outcome: Outcome };

export async function findRoute(
  domain: string,
  resolver: Resolver,
  family: IpFamily,
  random: () => number = Math.random,
): Promise<Route> {
  let mxs: { exchange: string; priority: number }[];
  try {
    mxs = await resolver.mx(domain);
  } catch (err) {
    const f = dnsFailure(err);
    if (f === 'nxdomain') {
      return fail('permanent', '5.1.2', `The domain ${domain} does not exist (DNS NXDOMAIN)`);
    }
    if (f === 'temporary') {
      return fail('transient', '4.4.3', `DNS lookup of MX for ${domain} failed: ${errText(err)}`);
    }
    mxs = [];
  }
  // RFC 7505 §3: "." (node gives "") as the only MX: no mail accepted.
  if (mxs.length === 1 && (mxs[0]?.exchange === '' || mxs[0]?.exchange === '.')) {
    return fail('permanent', '5.1.10', `${domain} accepts no mail (null MX, RFC 7505)`);
  }
  const implicit = mxs.length === 0;
  const ordered = implicit
    ? [{ name: domain, priority: 0 }]
    : mxs
        .filter((m) => m.exchange !== '' && m.exchange !== '.')
        .map((m) => ({ ...m, r: random() }))
        .sort((a, b) => a.priority - b.priority || a.r - b.r)
        .map((m) => ({ name: m.exchange.toLowerCase().replace(/\.$/, ''), priority: m.priority }));
  const names = [...new Set(ordered.map((m) => m.name))];
  const hosts: Host[] = [];
  let temporary: unknown = null;
  for (const name of names) {
    try {
      const addresses = await hostAddresses(name, resolver, family);
      const priority = ordered.find((m) => m.name === name)?.priority ?? 0;
      if (addresses.length) hosts.push({ name, addresses, priority });
      else if (await cnameLoop(name, resolver)) temporary = loopError(name);
    } catch (err) {
      if (dnsFailure(err) === 'temporary') temporary = err;
    }
  }
  if (hosts.length) return { kind: 'hosts', hosts, implicit };
  if (temporary) {
    return fail(
      'transient',
      '4.4.3',
      `DNS lookup of ${names.join(', ')} failed: ${errText(temporary)}`,
    );
  }
  if (implicit) {
    return fail('permanent', '5.1.2', `${domain} has no MX and no ${familyText(family)} address`);
  }
  // The MX hosts exist in DNS but have no usable address: a fixable mistake, so wait.
  return fail(
    'transient',
    '4.4.4',
    `The MX hosts of ${domain} (${names.join(', ')}) have no ${familyText(family)} address`,
  );
}

/** A host's addresses in `family` order; throws when every lookup failed. */
export async function hostAddresses(
  name: string,
  resolver: Resolver,
  family: IpFamily,
): Promise<string[]> {
  const want4 = family !== 'ipv6-only';
  const want6 = family !== 'ipv4-only';
  const [v4, v6] = await Promise.all([
    want4 ? resolver.addresses(name, 4).catch(orEmpty) : [],
    want6 ? resolver.addresses(name, 6).catch(orEmpty) : [],
  ]);
  const a = Array.isArray(v4) ? v4 : [];
  const aaaa = Array.isArray(v6) ? v6 : [];
  if (!a.length && !aaaa.length) {
    const failed = [v4, v6].find((x) => x instanceof Error);
    if (failed) throw failed;
  }
  return family === 'prefer-ipv4' ? [...a, ...aaaa] : [...aaaa, ...a];
}

/** NXDOMAIN is an empty answer for one family; other failures are kept to tell "temporary". */
function orEmpty(err: unknown): string[] | Error {
  return dnsFailure(err) === 'nxdomain' ? [] : (err as Error);
}

function familyText(family: IpFamily): string {
  return family === 'ipv4-only' ? 'IPv4' : family === 'ipv6-only' ? 'IPv6' : 'IP';
}

/**
 * A name whose CNAMEs go round in a circle (or on past MAX_CNAMES) has no
 * address, but only for now: a resolver answers such a loop with SERVFAIL
 * (RFC 1034 §3.6.2 asks resolvers to detect it), so it defers like one.
 */
const MAX_CNAMES = 8;

async function cnameLoop(name: string, resolver: Resolver): Promise<boolean> {
  const seen = new Set<string>([name]);
  let at = name;
  for (let i = 0; i < MAX_CNAMES; i++) {
    const next = await resolver
      .resolve(at, 'CNAME')
      .then((r) => (r as string[])[0]?.toLowerCase().replace(/\.$/, ''))
      .catch(() => undefined);
    if (!next) return false;
    if (seen.has(next)) return true;
    seen.add(next);
    at = next;
  }
  return true;
}

function loopError(name: string): Error {
  return new Error(`the CNAME records of ${name} form a loop`);
}

function errText(err: unknown): string {
  return (err as { code?: string }).code ?? (err as Error).message;
}

function fail(kind: 'transient' | 'permanent', enhanced: string, text: string): Route {
  return { kind: 'fail', outcome: local(kind, enhanced, text) };
}
