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
