/**
 * The addresses posta sends from: `addresses` in posta.toml when set, else the
 * public addresses of the machine's network interfaces. Behind NAT the
 * interfaces hold only private addresses and the public one cannot be known
 * from inside: then the set is empty and `unknown` says why.
 */
import { isIP } from 'node:net';
import type { NetworkInterfaceInfo } from 'node:os';
import { ipv6Groups } from '../address/ip.ts';

export interface SendingAddresses {
  addresses: string[];
  /** Where they came from, for the report. */
  source: 'config' | 'interfaces';
  /** Why no address could be told, when `addresses` is empty. */
  unknown?: string;
}

export function sendingAddresses(
  configured: readonly string[],
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>,
): SendingAddresses {
  if (configured.length) return { addresses: [...configured], source: 'config' };
  const found = Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter((i) => !i.internal)
    .map((i) => i.address);
  const addresses = [...new Set(found.filter(isPublic))];
  if (addresses.length) return { addresses, source: 'interfaces' };
  return {
    addresses: [],
    source: 'interfaces',
    unknown: found.length
      ? `the network interfaces have only private addresses (${found.join(', ')}): the server is behind NAT`
      : 'the network interfaces have no address besides loopback',
  };
}

/** Not private, loopback, link-local, shared (RFC 6598) or unique-local (RFC 4193). */
export function isPublic(ip: string): boolean {
  if (isIP(ip) === 4) {
    const [a = 0, b = 0] = ip.split('.').map(Number);
    return !(
      a === 0 ||
      a === 10 ||
      a === 127 ||
      (a === 100 && b >= 64 && b < 128) ||
      (a === 169 && b === 254) ||
      (a === 172 && b >= 16 && b < 32) ||
      (a === 192 && b === 168) ||
      a >= 224
    );
  }
  if (isIP(ip) !== 6) return false;
  const bare = ip.split('%')[0] ?? '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped?.[1]) return isPublic(mapped[1]);
  const first = parseInt(ipv6Groups(bare)[0] ?? '0', 16);
  const all = ipv6Groups(bare).join('');
  if (/^0+1?$/.test(all)) return false; // :: and ::1
  return !(
    (first & 0xffc0) === 0xfe80 ||
    (first & 0xfe00) === 0xfc00 ||
    (first & 0xff00) === 0xff00
  );
}
