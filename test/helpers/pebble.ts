/**
 * Pebble, Let's Encrypt's ACME test server (Debian package `pebble`), on a
 * random loopback address: its API on :14000 with a certificate from a test
 * CA (give `caFile` to posta as NODE_EXTRA_CA_CERTS), validating challenges on
 * ports 80 and 443 of the names' addresses as the DNS server given says.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';
import { tempDir } from './posta.ts';
import { randomLoopback } from './net.ts';

const run = promisify(execFile);

export interface Pebble {
  directory: string;
  caFile: string;
  stop(): void;
}

export async function startPebble(dnsServer: string): Promise<Pebble> {
  const dir = await tempDir('posta-pebble-');
  const address = randomLoopback();
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  await run('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2'],
    ...['-subj', '/CN=pebble API test CA', '-keyout', caKey, '-out', caFile],
    ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'],
  ]);
  await run('openssl', [
    ...['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=pebble'],
    ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'api.csr')],
  ]);
  await writeFile(join(dir, 'api.ext'), `subjectAltName=IP:${address},DNS:localhost\n`);
  await run('openssl', [
    ...['x509', '-req', '-in', join(dir, 'api.csr'), '-CA', caFile, '-CAkey', caKey],
    ...['-CAcreateserial', '-days', '2', '-extfile', join(dir, 'api.ext')],
    ...['-out', join(dir, 'cert.pem')],
  ]);
  const config = join(dir, 'pebble.json');
  await writeFile(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `${address}:14000`,
        managementListenAddress: `${address}:15000`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: 80,
        tlsPort: 443,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const child: ChildProcess = spawn('pebble', ['-config', config, '-dnsserver', dnsServer], {
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`pebble exited with ${code}: ${output}`)));
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => {
        output += `${line}\n`;
        if (line.includes('ACME directory available')) resolve();
      });
    }
  });
  return { directory: `https://${address}:14000/dir`, caFile, stop: () => child.kill() };
}
