/**
 * DNS blocklists (RFC 5782): a client address is listed in ZONE when
 * REVERSED-ADDRESS.ZONE has an A record in 127.0.0.0/8. A lookup that fails
 * counts as not listed: a broken list must not stop mail.
 */
import { isIP } from 'node:net';
import { reverseName } from '../dnsrecords/records.ts';
import type { ResolveFn } from '../dns/resolver.ts';

/** The first zone that lists `ip`, or null. */
export async function listedIn(
  ip: string,
  zones: readonly string[],
  resolve: ResolveFn,
): Promise<string | null> {
  const bare = ip.replace(/^::ffff:/i, '');
  if (zones.length === 0 || isIP(bare) === 0) return null;
  const reversed = reverseName(bare).replace(/\.(in-addr|ip6)\.arpa$/, '');
  const answers = await Promise.all(
    zones.map((zone) =>
      resolve(`${reversed}.${zone}`, 'A').then(
        (a) => (a as string[]).some((x) => x.startsWith('127.')),
        () => false,
      ),
    ),
  );
  const i = answers.indexOf(true);
  return i < 0 ? null : (zones[i] ?? null);
}
