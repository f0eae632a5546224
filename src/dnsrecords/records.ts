/**
 * The DNS records a posta domain needs, as zone-file lines that a DNS server
 * loads as they are (RFC 1035 §5): absolute names with a trailing dot, TTL,
 * class, type; TXT values split into quoted strings of at most 255 bytes
 * (RFC 1035 §3.3.14). PTR records are printed as comments: they belong to the
 * address owner's reverse zone and are set at the VPS provider.
 */
import { isIP } from 'node:net';
import { ipv6Groups } from '../address/ip.ts';
import type { DkimKey } from '../dkim/keys.ts';
import { dkimTxt } from '../dkim/keys.ts';
import { stsPolicy, stsPolicyId, type StsMode } from '../mtasts/policy.ts';

export interface RecordInput {
  domain: string;
  hostname: string;
  addresses: readonly string[];
  keys: readonly DkimKey[];
  mtaSts: { mode: StsMode; maxAge: number };
}

export interface DnsRecord {
  name: string;
  type: 'MX' | 'TXT' | 'A' | 'AAAA' | 'CNAME' | 'PTR';
  value: string;
  /** What the record is for, printed above it. */
  about: string;
}

const TTL = 3600;

/**
 * The local part of the rua address of DMARC and TLS-RPT: posta reads the
 * reports mailed there (reports/) and forwards them as the role alias says.
 */
export const REPORT_LOCAL = 'postmaster';

export function domainRecords(r: RecordInput): DnsRecord[] {
  const d = r.domain;
  const host = r.hostname;
  const v4 = r.addresses.filter((a) => isIP(a) === 4);
  const v6 = r.addresses.filter((a) => isIP(a) === 6);
  const spfTerms = [...v4.map((a) => `ip4:${a}`), ...v6.map((a) => `ip6:${a}`)];
  const policy = stsPolicy({ mode: r.mtaSts.mode, mx: host, maxAge: r.mtaSts.maxAge });
  const records: DnsRecord[] = [
    { name: d, type: 'MX', value: `10 ${host}.`, about: 'Mail for the domain goes to posta' },
    {
      name: d,
      type: 'TXT',
      value: `v=spf1 ${spfTerms.length ? spfTerms.join(' ') : 'mx'} -all`,
      about: 'SPF: only this server sends mail for the domain',
    },
    ...r.keys.map((k) => dkimRecord(d, k)),
    {
      name: `_dmarc.${d}`,
      type: 'TXT',
      value: `v=DMARC1; p=quarantine; rua=mailto:${REPORT_LOCAL}@${d}`,
      about: 'DMARC: receivers quarantine mail that fails SPF and DKIM, and report to postmaster@',
    },
    {
      name: `_mta-sts.${d}`,
      type: 'TXT',
      value: `v=STSv1; id=${stsPolicyId(policy)}`,
      about: `MTA-STS (mode ${r.mtaSts.mode}); posta serves the policy at https://mta-sts.${d}/.well-known/mta-sts.txt`,
    },
    {
      name: `mta-sts.${d}`,
      type: 'CNAME',
      value: `${host}.`,
      about: 'The MTA-STS policy host is posta itself',
    },
    {
      name: `_smtp._tls.${d}`,
      type: 'TXT',
      value: `v=TLSRPTv1; rua=mailto:${REPORT_LOCAL}@${d}`,
      about: 'TLS-RPT: where senders report TLS failures',
    },
    // RFC 7208 §2.3: a bounce's sender is empty, so receivers check the HELO name's SPF;
    // when the hostname is the domain itself, the record above serves both.
    ...(host === d
      ? []
      : [
          {
            name: host,
            type: 'TXT' as const,
            value: heloSpf(r.addresses),
            about: `SPF of the HELO name: bounces (sent from <>) are checked against ${host}`,
          },
        ]),
    ...v4.map((a) => ({ name: host, type: 'A' as const, value: a, about: `${host} is at ${a}` })),
    ...v6.map((a) => ({
      name: host,
      type: 'AAAA' as const,
      value: a,
      about: `${host} is at ${a}`,
    })),
  ];
  return records;
}

/** The hostname's SPF record: its addresses, or its own A/AAAA records when they are not known. */
export function heloSpf(addresses: readonly string[]): string {
  const terms = addresses.map((a) => `${isIP(a) === 6 ? 'ip6' : 'ip4'}:${a}`);
  return `v=spf1 ${terms.length ? terms.join(' ') : 'a'} -all`;
}

export function dkimRecord(domain: string, k: DkimKey): DnsRecord {
  return {
    name: `${k.selector}._domainkey.${domain}`,
    type: 'TXT',
    value: dkimTxt(k),
    about: `DKIM ${k.algorithm === 'rsa' ? 'RSA-2048' : 'Ed25519'} key, selector ${k.selector}`,
  };
}

export function ptrRecords(hostname: string, addresses: readonly string[]): DnsRecord[] {
  return addresses.map((a) => ({
    name: reverseName(a),
    type: 'PTR',
    value: `${hostname}.`,
    about: `Reverse DNS of ${a}: set it at your VPS provider`,
  }));
}

/** The in-addr.arpa / ip6.arpa name of an address (RFC 1035 §3.5, RFC 3596 §2.5). */
export function reverseName(address: string): string {
  if (isIP(address) === 4) return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
  return `${ipv6Groups(address).join('').split('').reverse().join('.')}.ip6.arpa`;
}

export function zoneLine(rec: DnsRecord): string {
  const value = rec.type === 'TXT' ? quoteTxt(rec.value) : rec.value;
  return `${rec.name}.\t${TTL}\tIN\t${rec.type}\t${value}`;
}

/** Quoted character-strings of at most 255 bytes each. */
export function quoteTxt(value: string): string {
  const bytes = Buffer.from(value);
  const parts: string[] = [];
  for (let i = 0; i < bytes.length; i += 255) {
    parts.push(bytes.subarray(i, i + 255).toString('latin1'));
  }
  return parts.map((p) => `"${p.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`).join(' ');
}

/** The whole `posta dns` output: a zone-file fragment with comments. */
export function formatZone(r: RecordInput): string {
  const out = [`; DNS records for ${r.domain}: publish these at your DNS provider.`];
  for (const rec of domainRecords(r)) out.push(`; ${rec.about}`, zoneLine(rec));
  if (r.addresses.length === 0) {
    out.push(
      `; A/AAAA of ${r.hostname} and the PTR of each address are not shown: list the server's`,
      '; public addresses in `addresses` in posta.toml, or pass --address IP.',
    );
  }
  for (const rec of ptrRecords(r.hostname, r.addresses)) {
    out.push(`; ${rec.about}:`, `; ${zoneLine(rec)}`);
  }
  return `${out.join('\n')}\n`;
}
