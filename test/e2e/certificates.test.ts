/**
 * Certificates from files and the https listener: a [tls] certificate that
 * another tool replaces on disk is used for new connections within seconds,
 * while connections already open keep going; the MTA-STS policy is served at
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt and read by mailauth's own
 * MTA-STS client, its id matching the `_mta-sts` record `posta dns` prints.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { connect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta, ROOT, tempDir } from '../helpers/posta.ts';
import { startDns, SOA } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { makeCert } from '../helpers/certs.ts';

const run = promisify(execFile);

async function tls465(s: TestServer): Promise<TLSSocket> {
  const socket = connect({
    host: s.host,
    port: s.ports.submissions,
    servername: 'mail.example.test',
    rejectUnauthorized: false,
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

test('a [tls] certificate replaced on disk is used for new connections within seconds', async (t) => {
  const s = await startServer();
  t.after(() => s.stop());
  const old = await tls465(s);
  const before = old.getPeerCertificate().serialNumber;

  const fresh = await makeCert(await tempDir('posta-newcert-'), 'mail.example.test');
  // As certbot's deploy hooks do: one file, then the other.
  await rename(fresh.cert, join(s.dir, 'cert.pem'));
  await sleep(300);
  await rename(fresh.key, join(s.dir, 'key.pem'));

  let after = before;
  for (let i = 0; i < 50 && after === before; i++) {
    await sleep(200);
    const c = await tls465(s);
    after = c.getPeerCertificate().serialNumber;
    c.destroy();
  }
  assert.notEqual(after, before, 'a new connection sees the new certificate');
  assert.ok(s.logs.some((l) => l.includes('"msg":"certificate reloaded"')));
  old.write('NOOP\r\n');
  const reply = await new Promise<string>((resolve) => {
    let buf = '';
    old.on('data', (d: Buffer) => {
      buf += d.toString();
      if (/^250 /m.test(buf)) resolve(buf);
    });
  });
  assert.match(reply, /^250 /m, 'the connection opened before the swap still works');
  old.destroy();
});

test('the MTA-STS policy is served over HTTPS and mailauth reads it, id and all', async (t) => {
  const host = randomLoopback();
  const dir = await tempDir('posta-stscert-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await run('openssl', [
    ...[
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=mail.example.test',
    ],
    ...['-addext', 'subjectAltName=DNS:mail.example.test,DNS:mta-sts.example.test'],
    ...['-keyout', key, '-out', cert],
  ]);
  const dns = await startDns(`${SOA('example.test')}\n`);
  t.after(() => dns.stop());
  const s = await startServer({
    host,
    https: true,
    certificate: `[tls]\ncert = "${cert}"\nkey = "${key}"`,
  });
  t.after(() => s.stop());
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  await dns.update(`${SOA('example.test')}\n${records.stdout}\nmail.example.test. IN A ${host}\n`);
  const published = /_mta-sts\.example\.test\.\s.*"v=STSv1; id=(\w+)"/.exec(records.stdout)?.[1];
  assert.ok(published, records.stdout);

  const script = join(dir, 'fetch.mjs');
  await writeFile(
    script,
    [
      `import { getPolicy } from '${join(ROOT, 'node_modules/mailauth/lib/mta-sts.js')}';`,
      "import { Resolver } from 'node:dns/promises';",
      'const r = new Resolver();',
      `r.setServers(['${dns.endpoint}']);`,
      "const result = await getPolicy('example.test', null, { resolver: (n, t) => r.resolve(n, t), strict: true });",
      'console.log(JSON.stringify(result));',
    ].join('\n'),
  );
  const out = await run(join(ROOT, 'node_modules/.bin/node'), [script], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: cert },
  });
  const result = JSON.parse(out.stdout) as {
    status: string;
    policy: { id: string; mode: string; mx: string[]; maxAge: number };
  };
  assert.equal(result.status, 'found', out.stdout);
  assert.equal(result.policy.id, published);
  assert.equal(result.policy.mode, 'testing');
  assert.deepEqual(result.policy.mx, ['mail.example.test']);
  assert.equal(result.policy.maxAge, 604800);

  const other = await fetch404(host, cert);
  assert.equal(other, 404, 'other paths and hosts are 404');

  // A client that sends no SNI (https://ADDRESS/) gets the certificate too.
  const sClient = run('openssl', [
    ...['s_client', '-connect', `${host}:443`, '-noservername', '-CAfile', cert],
  ]);
  sClient.child.stdin?.end(); // no request: s_client hangs up after the handshake
  // Its exit status says how the connection ended, not whether the handshake worked.
  const bare = await sClient.catch((err: { stdout: string }) => err);
  assert.match(bare.stdout, /subject=CN ?= ?mail\.example\.test/);
  assert.match(bare.stdout, /Verify return code: 0 \(ok\)/);
});

/** GET https://mta-sts.nosuch.test/ on the listener: the status code. */
async function fetch404(host: string, ca: string): Promise<number> {
  const { request } = await import('node:https');
  const { readFile } = await import('node:fs/promises');
  const caPem = await readFile(ca);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: 443,
        path: '/.well-known/mta-sts.txt',
        headers: { host: 'mta-sts.nosuch.test' },
        servername: 'mail.example.test',
        ca: caPem,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
