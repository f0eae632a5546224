/** IPv6 text forms (pure). */

/** The eight 4-digit hex groups of an IPv6 address: "2001:db8::1" -> ["2001", "0db8", ..., "0001"]. */
export function ipv6Groups(address: string): string[] {
  const [head = '', tail] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups =
    tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.toLowerCase().padStart(4, '0'));
}

/**
 * The network a client address belongs to, for connection limits: its /24
 * for IPv4 (an IPv4-mapped IPv6 address counts as IPv4), its /64 for IPv6,
 * the smallest block one host is usually given.
 */
export function clientNetwork(address: string): string {
  const v4 = ipv4Of(address);
  if (v4) return `${v4.split('.').slice(0, 3).join('.')}.0/24`;
  return ipv6Network(address);
}

/**
 * The client a per-host limit counts (the dashboard's failed logins): an
 * IPv4 address itself, an IPv6 address's /64.
 */
export function clientHost(address: string): string {
  return ipv4Of(address) ?? ipv6Network(address);
}

/** The IPv4 address, also when written as IPv4-mapped IPv6; null for IPv6. */
function ipv4Of(address: string): string | null {
  const v4 = address.replace(/^::ffff:/i, '');
  return /^\d+\.\d+\.\d+\.\d+$/.test(v4) ? v4 : null;
}

function ipv6Network(address: string): string {
  return `${ipv6Groups(address.replace(/%.*$/, '')).slice(0, 4).join(':')}::/64`;
}

/** True for 127.0.0.0/8, ::1, and 127.x written as IPv4-mapped IPv6. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase().replace(/^::ffff:/, '');
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}
