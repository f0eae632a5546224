/**
 * The doctor's certificate check: the certificate posta serves ([tls] cert, or
 * the one [acme] keeps in data/acme/live/NAME/fullchain.pem) covers hostname
 * (wildcards too, RFC 6125 §6.4.3), is valid now with more than 14 days left,
 * and its chain is complete: each certificate in the file is issued by the
 * next (RFC 8446 §4.4.2), and the last is issued by a trusted root or is one.
 * "Trusted" is this machine's store as Node sees it (its bundled roots plus
 * NODE_EXTRA_CA_CERTS, and the system's with --use-system-ca); a chain that
 * ends in a self-signed certificate outside it works, but senders cannot
 * verify it: a warning.
 */
import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { getCACertificates } from 'node:tls';
import { fail, pass, warn, type CheckResult } from './report.ts';

export const MIN_DAYS_LEFT = 14;
const DAY_MS = 86_400_000;

export interface CertificateInput {
  /** The certificate file posta serves. */
  file: string;
  hostname: string;
  /** How the certificate is renewed, for the fix line. */
  managedByAcme: boolean;
  now: () => Date;
  /** PEM roots; default: Node's default CA store. */
  roots?: readonly string[];
}

export function splitPem(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

const issuedBy = (cert: X509Certificate, issuer: X509Certificate) =>
  cert.checkIssued(issuer) && cert.verify(issuer.publicKey);

export async function checkCertificate(input: CertificateInput): Promise<CheckResult> {
  const renew = input.managedByAcme
    ? '`posta cert status` shows why renewal failed; `posta cert renew` tries again'
    : 'renew it with the tool that manages it (certbot, acme.sh); posta reloads the file by itself';
  let chain: X509Certificate[];
  try {
    chain = splitPem(await readFile(input.file, 'utf8'));
  } catch (err) {
    return fail(
      'certificate',
      `cannot read ${input.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      input.managedByAcme
        ? 'start posta serve and let it get the certificate; `posta cert status` shows progress'
        : 'point [tls] cert in posta.toml at the fullchain.pem of your certificate',
    );
  }
  const leaf = chain[0];
  if (!leaf) {
    return fail(
      'certificate',
      `${input.file} holds no PEM certificate`,
      'point [tls] cert at fullchain.pem',
    );
  }
  const now = input.now().getTime();
  const notAfter = new Date(leaf.validTo);
  const days = Math.floor((notAfter.getTime() - now) / DAY_MS);
  const expiry = `expires ${notAfter.toISOString().slice(0, 10)}`;
  if (new Date(leaf.validFrom).getTime() > now) {
    return fail(
      'certificate',
      `${input.file} is not valid before ${leaf.validFrom}`,
      "check the server's clock",
    );
  }
  if (days < 0)
    return fail('certificate', `${input.file} expired on ${notAfter.toISOString()}`, renew);
  // RFC 6125 §6.4: the DNS-ID (subjectAltName), wildcards in the left-most label.
  if (!leaf.checkHost(input.hostname, { subject: 'never' })) {
    return fail(
      'certificate',
      `${input.file} covers ${leaf.subjectAltName ?? leaf.subject}, not ${input.hostname}`,
      `get a certificate for ${input.hostname} (with [acme] posta gets one by itself)`,
    );
  }
  if (days < MIN_DAYS_LEFT) {
    return fail(
      'certificate',
      `${input.hostname}: ${expiry}, in ${days} day${days === 1 ? '' : 's'}`,
      renew,
    );
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const [cert, next] = [chain[i], chain[i + 1]];
    if (cert && next && !issuedBy(cert, next)) {
      return fail(
        'certificate',
        `${input.file}: certificate ${i + 1} (${cert.subject.replaceAll('\n', ', ')}) is not issued by certificate ${i + 2}`,
        'put the certificate first, then each intermediate in order (fullchain.pem)',
      );
    }
  }
  const last = chain[chain.length - 1] ?? leaf;
  const roots = (input.roots ?? getCACertificates('default')).map((p) => new X509Certificate(p));
  const trusted = roots.some((r) => r.fingerprint256 === last.fingerprint256 || issuedBy(last, r));
  const ok = `${input.hostname}, ${expiry} (${days} days)`;
  if (trusted) return pass('certificate', `${ok}, chain of ${chain.length} complete`);
  if (issuedBy(last, last)) {
    return warn(
      'certificate',
      `${ok}; ${chain.length === 1 ? 'self-signed' : `the chain ends in ${last.subject.replaceAll('\n', ', ')}, a root no public store trusts`}: TLS works, but senders cannot verify it`,
      input.managedByAcme
        ? 'posta serves a temporary self-signed certificate until ACME succeeds: `posta cert status` shows why it has not'
        : 'use a certificate from a public CA, or add [acme] with your email to posta.toml and let posta get one',
    );
  }
  return fail(
    'certificate',
    `${ok}; the chain is incomplete: ${last.issuer.replaceAll('\n', ', ')}, the issuer of the last certificate in ${input.file}, is neither in the file nor a trusted root`,
    'point [tls] cert at fullchain.pem (the certificate followed by its intermediates), not cert.pem',
  );
}
