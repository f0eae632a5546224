/**
 * Built-in ACME against Pebble (Let's Encrypt's test CA) on loopback: a
 * certificate is obtained with http-01, with tls-alpn-01, and a wildcard with
 * dns-01 through a hook script that edits the test DNS server's zone. A
 * forced renewal (`posta cert renew`) swaps the certificate that a new TLS
 * connection to 465 sees while an older connection stays up.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta, tempDir } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startPebble, type Pebble } from '../helpers/pebble.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

let dns: DnsServer;
let pebble: Pebble;
const servers: TestServer[] = [];

before(async () => {
  dns = await startDns(`${SOA('test')}\n`);
  pebble = await startPebble(dns.endpoint);
});

after(async () => {
  for (const s of servers) await s.stop();
  pebble?.stop();
  dns?.stop();
});

/** A posta for `domain` whose names resolve to its own loopback address. */
async function acmeServer(
  domain: string,
  acme: (host: string) => string[],
  opts: { https?: boolean; http?: boolean } = {},
): Promise<TestServer> {
  const host = randomLoopback();
  await dns.update(
    `${await currentZone()}mail.${domain}. IN A ${host}\nmta-sts.${domain}. IN A ${host}\n${domain}. IN A ${host}\n`,
  );
  const s = await startServer({
    domain,
    host,
    https: opts.https,
    http: opts.http,
    certificate: [
      '[acme]',
      'email = "postmaster@example.test"',
      `directory = "${pebble.directory}"`,
      ...acme(host),
    ].join('\n'),
    env: { NODE_EXTRA_CA_CERTS: pebble.caFile },
  });
  servers.push(s);
  return s;
}

function currentZone(): Promise<string> {
  return readFile(dns.file, 'utf8');
}

async function obtained(s: TestServer, count = 1): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const n = s.logs.filter((l) => l.includes('"msg":"certificate obtained"')).length;
    if (n >= count) return;
    const failed = s.logs.find((l) => l.includes('certificate order failed'));
    if (failed) throw new Error(failed);
    await sleep(100);
  }
  throw new Error(`no certificate obtained:\n${s.logs.join('\n')}`);
}

/** Open TLS to 465 and return the socket with the certificate it presented. */
async function tls465(
  s: TestServer,
  servername: string,
): Promise<{ socket: TLSSocket; cert: PeerCertificate }> {
  const socket = connect({
    host: s.host,
    port: s.ports.submissions,
    servername,
    rejectUnauthorized: false,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, cert: socket.getPeerCertificate() };
}

const issuer = (c: PeerCertificate) => String(c.issuer.CN);

test('http-01: the CA certificate replaces the temporary one; a forced renewal swaps it for new connections only', async () => {
  const s = await acmeServer('http.test', (host) => [
    'challenge = "http-01"',
    'names = ["mail.http.test"]',
    `http_listen = ["${host}:80"]`,
  ]);
  await obtained(s);
  const first = await tls465(s, 'mail.http.test');
  assert.match(issuer(first.cert), /Pebble/);
  assert.deepEqual(first.cert.subjectaltname, 'DNS:mail.http.test');

  const status = await posta(['cert', 'status', '--dir', s.dir]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^names\s+mail\.http\.test$/m);
  assert.match(status.stdout, /^issuer\s+Pebble/m);
  assert.match(status.stdout, /^next renewal\s+\d{4}-/m);

  const renewed = await posta(['cert', 'renew', '--dir', s.dir]);
  assert.equal(renewed.code, 0, renewed.stderr + renewed.stdout);
  const second = await tls465(s, 'mail.http.test');
  assert.notEqual(
    second.cert.serialNumber,
    first.cert.serialNumber,
    'a new connection sees the new certificate',
  );
  // The connection opened before the renewal is still up and served.
  first.socket.write('NOOP\r\n');
  const reply = await new Promise<string>((resolve) => {
    let buf = '';
    first.socket.on('data', (d: Buffer) => {
      buf += d.toString();
      if (/^250 /m.test(buf)) resolve(buf);
    });
  });
  assert.match(reply, /^250 /m);
  first.socket.destroy();
  second.socket.destroy();
});

test('tls-alpn-01 on the https listener', async () => {
  const s = await acmeServer(
    'alpn.test',
    () => ['challenge = "tls-alpn-01"', 'names = ["mail.alpn.test", "mta-sts.alpn.test"]'],
    { https: true },
  );
  await obtained(s);
  const { socket, cert } = await tls465(s, 'mail.alpn.test');
  socket.destroy();
  assert.match(issuer(cert), /Pebble/);
  assert.equal(cert.subjectaltname, 'DNS:mail.alpn.test, DNS:mta-sts.alpn.test');
});

test('dns-01 through a hook script gives a wildcard certificate', async () => {
  const hook = join(await tempDir('posta-hook-'), 'dns-hook');
  // add NAME VALUE: append the TXT record; del NAME VALUE: remove it.
  await writeFile(
    hook,
    [
      '#!/bin/sh',
      // VALUE is base64url and may begin with '-': keep it from being read as an option.
      'set -e',
      'cat > /dev/null # posta gives the hook an empty stdin',
      `zone="${dns.file}"`,
      'case "$1" in',
      '  add) printf \'%s. 60 IN TXT "%s"\\n\' "$2" "$3" >> "$zone" ;;',
      `  del) grep -v -F -e "$3" "$zone" > "$zone.tmp" || true; mv "$zone.tmp" "$zone" ;;`,
      '  *) echo "usage: $0 add|del NAME VALUE" >&2; exit 2 ;;',
      'esac',
      '',
    ].join('\n'),
  );
  await chmod(hook, 0o755);
  const s = await acmeServer('wild.test', () => [
    'challenge = "dns-01"',
    'names = ["*.wild.test", "wild.test"]',
    `dns_hook = "${hook}"`,
  ]);
  await obtained(s);
  const { socket, cert } = await tls465(s, 'mail.wild.test');
  socket.destroy();
  assert.match(issuer(cert), /Pebble/);
  assert.equal(cert.subjectaltname, 'DNS:*.wild.test, DNS:wild.test');
  // The records go once the CA has validated them; give the hook a moment.
  let zone = await readFile(dns.file, 'utf8');
  for (let i = 0; i < 50 && zone.includes('_acme-challenge'); i++) {
    await sleep(100);
    zone = await readFile(dns.file, 'utf8');
  }
  assert.doesNotMatch(zone, /_acme-challenge/, 'the hook removed its records');
});

test('a failed order keeps the current certificate and shows in the log, posta status and /metrics', async () => {
  const hook = join(await tempDir('posta-hook-'), 'dns-hook');
  await writeFile(hook, '#!/bin/sh\necho "the DNS provider refused the API token" >&2\nexit 1\n');
  await chmod(hook, 0o755);
  const s = await acmeServer(
    'broken.test',
    () => ['challenge = "dns-01"', `dns_hook = "${hook}"`],
    { http: true },
  );
  for (let i = 0; i < 300 && !s.logs.some((l) => l.includes('certificate order failed')); i++) {
    await sleep(100);
  }
  const failed = s.logs.find((l) => l.includes('certificate order failed')) ?? '';
  assert.match(failed, /the DNS provider refused the API token/);
  assert.match(failed, /"retryIn":"300 s"/);
  // Still serving: the temporary certificate, until an order succeeds.
  const { socket, cert } = await tls465(s, 'mail.broken.test');
  socket.destroy();
  assert.doesNotMatch(issuer(cert), /Pebble/);
  const status = await posta(['status', '--json', '--dir', s.dir]);
  assert.equal(status.code, 0, status.stderr);
  const certificate = (
    JSON.parse(status.stdout) as { certificate: { failures: number; lastError?: string } }
  ).certificate;
  assert.equal(certificate.failures, 1);
  assert.match(certificate.lastError ?? '', /the DNS provider refused the API token/);
  const text = await posta(['status', '--dir', s.dir]);
  assert.match(text.stdout, /^ {2}renewal failing: 1 failed in a row, last: .*API token/m);
  const metrics = await (await fetch(`http://${s.host}:${s.ports.http}/metrics`)).text();
  assert.match(metrics, /^posta_certificate_renewal_failures 1$/m);
});
