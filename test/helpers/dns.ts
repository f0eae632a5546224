/**
 * A real DNS server on loopback for tests (test/peers/dns_server.py, on
 * dnslib), serving a zone file on 127.x.y.z:53 over UDP and TCP.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ROOT, tempDir } from './posta.ts';
import { randomLoopback } from './net.ts';

export interface DnsServer {
  address: string;
  port: number;
  /** "ADDRESS:PORT" as posta.toml's [dns] servers takes it. */
  endpoint: string;
  /** The zone file; the server re-reads it when it changes. */
  file: string;
  /** Serve this zone from now on (the server re-reads its file). */
  update(zone: string): Promise<void>;
  stop(): void;
}

export const SOA = (origin: string) =>
  [
    `$ORIGIN ${origin}.`,
    '$TTL 300',
    `@ IN SOA ns.${origin}. hostmaster.${origin}. 1 3600 600 86400 300`,
    `@ IN NS ns.${origin}.`,
  ].join('\n');

export async function startDns(zone: string): Promise<DnsServer> {
  const file = join(await tempDir('posta-dns-'), 'zone');
  await writeFile(file, zone);
  const address = randomLoopback();
  const port = 53;
  const child: ChildProcess = spawn(
    '/usr/bin/python3',
    [join(ROOT, 'test/peers/dns_server.py'), file, address, String(port)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`dns_server.py exited with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', () => resolve());
  });
  return {
    address,
    port,
    endpoint: `${address}:${port}`,
    file,
    async update(zone: string) {
      const tmp = `${file}.new`;
      await writeFile(tmp, zone);
      await rename(tmp, file);
    },
    stop: () => child.kill(),
  };
}

/**
 * One of dkimpy's verifiers (test/peers/with_dns.py) on `message`, looking
 * keys up on `dns`: exit code 0 when it passes, with what it printed.
 */
export function dkimpy(
  dns: Pick<DnsServer, 'address' | 'port'>,
  tool: 'dkimverify' | 'dkimverify-all' | 'arcverify',
  message: Buffer,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      '/usr/bin/python3',
      [join(ROOT, 'test/peers/with_dns.py'), dns.address, String(dns.port), tool],
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
    );
    child.stdin?.end(message);
  });
}

/**
 * OpenDKIM's verifier (opendkim-testmsg, opendkim-tools) on `message`: it
 * asks the system resolver, so it runs in a mount namespace of its own where
 * /etc/resolv.conf names `dns` (port 53) and nothing else. Exit code 0 when
 * every signature verifies; it prints only on failure.
 */
export async function opendkim(
  dns: Pick<DnsServer, 'address' | 'port'>,
  message: Buffer,
): Promise<{ code: number; out: string }> {
  if (dns.port !== 53) throw new Error('opendkim-testmsg asks port 53 only');
  const conf = join(await tempDir('posta-resolv-'), 'resolv.conf');
  await writeFile(conf, `nameserver ${dns.address}\noptions attempts:2 timeout:2\n`);
  return new Promise((resolve) => {
    const child = execFile(
      'unshare',
      [
        '--mount',
        '--propagation=private',
        'sh',
        '-c',
        'mount --bind "$1" /etc/resolv.conf && exec opendkim-testmsg',
        'sh',
        conf,
      ],
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
    );
    child.stdin?.end(message);
  });
}
