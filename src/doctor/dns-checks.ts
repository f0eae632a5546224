/**
 * Doctor checks on where mail goes and where it comes from, against live DNS:
 *   mx       the domain's MX names hostname (RFC 5321 §5.1)
 *   address  hostname's A/AAAA are exactly the sending addresses
 *   ptr      each sending address has PTR = hostname and hostname resolves back
 *            to it (forward-confirmed reverse DNS, RFC 8601 §3 "iprev"), per family
 *   dnsbl    no sending address is listed in the given blocklists (RFC 5782)
 */
import { isIP } from 'node:net';
import type { ResolveFn } from '../dns/resolver.ts';
import type { IpFamily } from '../config/load.ts';
import { reverseName } from '../dnsrecords/records.ts';
import { listedIn } from '../verify/dnsbl.ts';
import type { SendingAddresses } from './addresses.ts';
import { addresses, ipKey, mx, ptr } from './lookup.ts';
import { fail, pass, warn, type CheckId, type CheckResult } from './report.ts';

export interface DnsContext {
  domain: string;
  hostname: string;
  resolve: ResolveFn;
  sending: SendingAddresses;
  ipFamily: IpFamily;
}

const family = (ip: string): 4 | 6 => (isIP(ip) === 6 ? 6 : 4);

/** "could not tell which addresses posta sends from" for checks that need them. */
export function unknownAddresses(id: CheckId, ctx: DnsContext): CheckResult {
  return warn(
    id,
    `could not test: ${ctx.sending.unknown ?? 'no sending address'}`,
    'list the server\'s public addresses in `addresses = ["..."]` at the top of posta.toml',
  );
}

export async function checkMx(ctx: DnsContext): Promise<CheckResult> {
  const records = await mx(ctx.resolve, ctx.domain);
  const want = `publish \`${ctx.domain}. IN MX 10 ${ctx.hostname}.\``;
  if (records.length === 0) {
    return fail('mx', `${ctx.domain} has no MX record`, want);
  }
  const shown = records.map((r) => `${r.priority} ${r.exchange || '.'}`).join(', ');
  // RFC 7505 §3: a single MX with an empty exchange: the domain takes no mail.
  if (records.some((r) => r.exchange === '')) {
    return fail('mx', `${ctx.domain} has a null MX (accepts no mail): ${shown}`, want);
  }
  const ours = records.find((r) => r.exchange === ctx.hostname);
  if (!ours) {
    return fail(
      'mx',
      `${ctx.domain} MX ${shown}, not ${ctx.hostname}`,
      `${want} in place of the other MX records`,
    );
  }
  // RFC 5321 §5.1: senders try the lowest preference first.
  const before = records.filter((r) => r.priority < ours.priority);
  if (before.length) {
    return warn(
      'mx',
      `${ctx.domain} MX ${shown}: ${before.map((r) => r.exchange).join(', ')} come before ${ctx.hostname}`,
      `give ${ctx.hostname} the lowest preference, or remove the other MX records`,
    );
  }
  return pass('mx', `${ctx.domain} MX ${shown}`);
}

export async function checkAddress(ctx: DnsContext): Promise<CheckResult> {
  const [a, aaaa] = await Promise.all([
    addresses(ctx.resolve, ctx.hostname, 4),
    addresses(ctx.resolve, ctx.hostname, 6),
  ]);
  const found = [...a, ...aaaa];
  const shown = found.length ? found.join(', ') : 'no A or AAAA record';
  if (ctx.sending.addresses.length === 0) {
    return warn(
      'address',
      `${ctx.hostname}: ${shown}; could not tell whether they are this server's: ${ctx.sending.unknown ?? ''}`,
      'list the server\'s public addresses in `addresses = ["..."]` at the top of posta.toml',
    );
  }
  const have = new Set(found.map(ipKey));
  const want = new Set(ctx.sending.addresses.map(ipKey));
  const missing = ctx.sending.addresses.filter((ip) => !have.has(ipKey(ip)));
  const extra = found.filter((ip) => !want.has(ipKey(ip)));
  if (missing.length === 0 && extra.length === 0) {
    return pass('address', `${ctx.hostname} is at ${shown}`);
  }
  const problems = [
    ...(missing.length ? [`lacks ${missing.join(', ')}`] : []),
    ...(extra.length ? [`also points at ${extra.join(', ')}, which this server does not use`] : []),
  ];
  const records = ctx.sending.addresses
    .map((ip) => `${ctx.hostname}. IN ${family(ip) === 4 ? 'A' : 'AAAA'} ${ip}`)
    .join('; ');
  return fail(
    'address',
    `${ctx.hostname} is at ${shown}: it ${problems.join(' and ')}`,
    `publish exactly ${records}`,
  );
}

export interface PtrResult extends CheckResult {
  /** IPv6 fails where IPv4 passes: delivering over IPv4 only would help. */
  suggestIpv4Only: boolean;
}

export async function checkPtr(ctx: DnsContext): Promise<PtrResult> {
  if (ctx.sending.addresses.length === 0) {
    return { ...unknownAddresses('ptr', ctx), suggestIpv4Only: false };
  }
  const forward = {
    4: (await addresses(ctx.resolve, ctx.hostname, 4)).map(ipKey),
    6: (await addresses(ctx.resolve, ctx.hostname, 6)).map(ipKey),
  };
  const results = await Promise.all(
    ctx.sending.addresses.map(async (ip) => {
      const names = await ptr(ctx.resolve, reverseName(ip));
      // RFC 8601 §3 (iprev): the PTR name must resolve back to the address.
      const named = names.includes(ctx.hostname);
      const back = forward[family(ip)].includes(ipKey(ip));
      const problem = !named
        ? names.length
          ? `PTR ${names.join(', ')}, not ${ctx.hostname}`
          : 'no PTR record'
        : !back
          ? `${ctx.hostname} does not resolve back to it`
          : '';
      return { ip, family: family(ip), problem };
    }),
  );
  const perFamily = ([4, 6] as const)
    .map((f) => {
      const list = results.filter((r) => r.family === f);
      if (list.length === 0) return '';
      const bad = list.filter((r) => r.problem);
      return bad.length
        ? `IPv${f}: ${bad.map((r) => `${r.ip} ${r.problem}`).join('; ')}`
        : `IPv${f}: ${list.map((r) => r.ip).join(', ')} → ${ctx.hostname}`;
    })
    .filter(Boolean)
    .join('; ');
  const bad = results.filter((r) => r.problem);
  if (bad.length === 0) {
    return { ...pass('ptr', perFamily), suggestIpv4Only: false };
  }
  const setPtr = `set the PTR (reverse DNS) of ${bad.map((r) => r.ip).join(', ')} to ${ctx.hostname} at your VPS provider`;
  const v4ok =
    results.some((r) => r.family === 4) && results.every((r) => r.family === 6 || !r.problem);
  const v6ok =
    results.some((r) => r.family === 6) && results.every((r) => r.family === 4 || !r.problem);
  // An address family posta does not deliver over needs no PTR.
  if ((v4ok && ctx.ipFamily === 'ipv4-only') || (v6ok && ctx.ipFamily === 'ipv6-only')) {
    return {
      ...warn(
        'ptr',
        `${perFamily}; posta delivers over IPv${v4ok ? 4 : 6} only ([delivery] ip_family = "${ctx.ipFamily}")`,
        `${setPtr} to deliver over both families`,
      ),
      suggestIpv4Only: false,
    };
  }
  if (v4ok) {
    return {
      ...fail(
        'ptr',
        `${perFamily}; IPv4 passes but IPv6 fails, and receivers such as Gmail refuse mail over IPv6 without reverse DNS`,
        `${setPtr}, or set [delivery] ip_family = "ipv4-only" in posta.toml (posta doctor --fix does it)`,
      ),
      suggestIpv4Only: true,
    };
  }
  return { ...fail('ptr', perFamily, setPtr), suggestIpv4Only: false };
}

export async function checkDnsbl(ctx: DnsContext, zones: readonly string[]): Promise<CheckResult> {
  if (ctx.sending.addresses.length === 0) return unknownAddresses('dnsbl', ctx);
  const listed: string[] = [];
  for (const ip of ctx.sending.addresses) {
    for (const zone of zones) {
      if (await listedIn(ip, [zone], ctx.resolve)) listed.push(`${ip} is listed in ${zone}`);
    }
  }
  if (listed.length) {
    return fail(
      'dnsbl',
      listed.join('; '),
      'find out why (an open relay, a compromised account, the previous owner of the address) and ask each list to delist the address on its web site',
    );
  }
  return pass('dnsbl', `${ctx.sending.addresses.join(', ')} not listed in ${zones.join(', ')}`);
}
