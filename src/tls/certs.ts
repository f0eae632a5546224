/**
 * The server certificate from [tls] cert/key files: loaded and checked at
 * start-up, so posta refuses to start on a missing, unreadable, expired or
 * mismatched certificate with a sentence that says what to fix.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { PostaError } from '../errors.ts';

export interface Certificate {
  cert: Buffer;
  key: Buffer;
  notAfter: Date;
  names: string[];
  /** The self-signed stand-in served until ACME's first certificate arrives. */
  temporary?: boolean;
}

export async function loadCertificate(certFile: string, keyFile: string): Promise<Certificate> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (err) {
      throw new PostaError(
        `Cannot read the TLS ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); fix [tls] in posta.toml or the file's permissions.`,
      );
    }
  };
  const cert = await read(certFile, 'certificate');
  const key = await read(keyFile, 'key');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new PostaError(
      `${certFile} is not a PEM certificate; point [tls] cert at fullchain.pem.`,
    );
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) {
      throw new PostaError(
        `The key ${keyFile} does not belong to the certificate ${certFile}; fix [tls] in posta.toml.`,
      );
    }
  } catch (err) {
    if (err instanceof PostaError) throw err;
    throw new PostaError(`${keyFile} is not a PEM private key; point [tls] key at privkey.pem.`);
  }
  const notAfter = new Date(x509.validTo);
  if (notAfter.getTime() < Date.now()) {
    throw new PostaError(
      `The certificate ${certFile} expired on ${notAfter.toISOString()}; renew it.`,
    );
  }
  const names = (x509.subjectAltName ?? '')
    .split(', ')
    .filter((n) => n.startsWith('DNS:'))
    .map((n) => n.slice(4));
  return { cert, key, notAfter, names };
}

/** Does the certificate name `host` (RFC 6125 §6.4: SAN DNS-IDs, left-most wildcard)? */
export function certificateCovers(c: Certificate, host: string): boolean {
  return new X509Certificate(c.cert).checkHost(host, { subject: 'never' }) !== undefined;
}
