/**
 * Pebble, Let's Encrypt's ACME test server (Debian package `pebble`), on a
 * random loopback address: its API on :14000 with a certificate from a test
 * CA (give `caFile` to posta as NODE_EXTRA_CA_CERTS), validating challenges on
 * ports 80 and 443 of the names' addresses as the DNS server given says.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { tempDir } from './posta.ts';
import { randomLoopback } from './net.ts';
import { testCa } from './certs.ts';

export interface Pebble {
  directory: string;
  caFile: string;
  stop(): void;
}

export async function startPebble(dnsServer: string): Promise<Pebble> {
  const dir = await tempDir('posta-pebble-');
  const address = randomLoopback();
  const { ca, issue } = await testCa(dir, 'pebble API test CA');
  const api = await issue([address, 'localhost']);
  const config = join(dir, 'pebble.json');
  await writeFile(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `${address}:14000`,
        managementListenAddress: `${address}:15000`,
        certificate: api.cert,
        privateKey: api.key,
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
  return { directory: `https://${address}:14000/dir`, caFile: ca.cert, stop: () => child.kill() };
}
