/**
 * Test certificates made with openssl: a self-signed one, and a test CA that
 * issues certificates (give its file to a client as NODE_EXTRA_CA_CERTS or
 * `ca`). Names that are IP addresses become IP SANs, the rest DNS SANs.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const san = (names: string[]) =>
  `subjectAltName=${names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',')}`;

/** A self-signed certificate for `names` (the first is the CN) as DIR/cert.pem, DIR/key.pem. */
export async function makeCert(
  dir: string,
  ...names: [string, ...string[]]
): Promise<{ cert: string; key: string }> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await run('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2'],
    ...['-subj', `/CN=${names[0]}`, '-addext', san(names), '-keyout', key, '-out', cert],
  ]);
  return { cert, key };
}

export interface TestCa {
  /** The CA certificate file (and its key). */
  ca: { cert: string; key: string };
  /** A certificate for `names`, valid `days` (2), with a new key or `key`. */
  issue: (
    names: string[],
    opts?: { days?: number; key?: string },
  ) => Promise<{ cert: string; key: string }>;
}

export async function testCa(dir: string, name = 'posta test CA'): Promise<TestCa> {
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
  await run('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2'],
    ...['-subj', `/CN=${name}`, '-keyout', ca.key, '-out', ca.cert],
    ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
  ]);
  let n = 0;
  return {
    ca,
    issue: async (names, opts = {}) => {
      const base = join(dir, `leaf${++n}`);
      const key = opts.key ?? `${base}.key`;
      await run('openssl', [
        ...['req', '-subj', `/CN=${names[0]}`, '-out', `${base}.csr`],
        ...(opts.key ? ['-new', '-key', key] : ['-newkey', 'rsa:2048', '-nodes', '-keyout', key]),
      ]);
      await writeFile(`${base}.ext`, `${san(names)}\n`);
      await run('openssl', [
        ...['x509', '-req', '-in', `${base}.csr`, '-CA', ca.cert, '-CAkey', ca.key],
        ...['-CAcreateserial', '-days', String(opts.days ?? 2), '-extfile', `${base}.ext`],
        ...['-out', `${base}.pem`],
      ]);
      return { cert: `${base}.pem`, key };
    },
  };
}
