/**
 * A self-signed certificate made on the spot: for the sandbox, and for the
 * first minutes of an ACME set-up, until the real certificate arrives.
 */
import selfsigned from 'selfsigned';
import type { Certificate } from './certs.ts';

export async function selfSignedCertificate(names: readonly string[]): Promise<Certificate> {
  const dns = names.filter((n) => !/^[\d.:]+$/.test(n));
  const ips = names.filter((n) => /^[\d.:]+$/.test(n));
  const pems = await selfsigned.generate([{ name: 'commonName', value: dns[0] ?? 'localhost' }], {
    days: 365,
    keySize: 2048,
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          ...dns.map((value) => ({ type: 2, value })),
          ...ips.map((ip) => ({ type: 7, ip })),
        ],
      },
    ],
  } as Parameters<typeof selfsigned.generate>[1]);
  return {
    cert: Buffer.from(pems.cert),
    key: Buffer.from(pems.private),
    notAfter: new Date(Date.now() + 365 * 86400_000),
    names: dns,
  };
}
