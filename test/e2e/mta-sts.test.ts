/**
 * MTA-STS (RFC 8461) on delivery: recipient domains publish `_mta-sts` TXT
 * records on a loopback DNS server and serve their policies over HTTPS on
 * 127.x.y.z:443, with certificates from a test CA that posta is told to trust
 * (NODE_EXTRA_CA_CERTS). With an "enforce" policy, posta delivers only to an
 * MX the policy names and only over TLS whose certificate verifies; otherwise
 * the message waits in the queue, and is never sent in plaintext.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta, tempDir } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';
import { testCa } from '../helpers/certs.ts';
import { submit } from '../helpers/smtp.ts';

let dns: DnsServer;
let good: Receiver;
let untrusted: Receiver;
let unknownCa: Receiver;
let https: Server;
let s: TestServer;

const POLICIES: Record<string, string> = {
  'mta-sts.good.test': policy('mx.good.test'),
  'mta-sts.untrusted.test': policy('mx.untrusted.test'),
  'mta-sts.unknownca.test': policy('mx.unknownca.test'),
  'mta-sts.wrongmx.test': policy('mx.elsewhere.test'),
};

function policy(mx: string): string {
  return `version: STSv1\r\nmode: enforce\r\nmx: ${mx}\r\nmax_age: 86400\r\n`;
}

before(async () => {
  const dir = await tempDir('posta-sts-');
  const { ca, issue } = await testCa(dir);
  const goodMx = randomLoopback();
  const badMx = randomLoopback();
  const web = randomLoopback();
  good = await startReceiver({ listen: [`${goodMx}:25`], tls: await issue(['mx.good.test']) });
  untrusted = await startReceiver({ listen: [`${badMx}:25`] }); // self-signed
  // A certificate from a CA posta does not trust: Node adds its --use-system-ca hint.
  const otherCa = await testCa(await tempDir('posta-sts-other-'), 'a CA posta does not know');
  const otherMx = randomLoopback();
  unknownCa = await startReceiver({
    listen: [`${otherMx}:25`],
    tls: await otherCa.issue(['mx.unknownca.test']),
  });
  const webCert = await issue(Object.keys(POLICIES));
  https = createServer(
    { cert: await readFile(webCert.cert), key: await readFile(webCert.key) },
    (req, res) => {
      const body = POLICIES[(req.headers.host ?? '').split(':')[0] ?? ''];
      if (req.url !== '/.well-known/mta-sts.txt' || !body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    },
  );
  await new Promise<void>((resolve) => https.listen(443, web, resolve));
  const zone = [SOA('test')];
  for (const [domain, mx] of [
    ['good.test', goodMx],
    ['untrusted.test', badMx],
    ['wrongmx.test', goodMx],
    ['unknownca.test', otherMx],
  ] as const) {
    zone.push(
      `${domain}. IN MX 10 mx.${domain}.`,
      `mx.${domain}. IN A ${mx}`,
      `_mta-sts.${domain}. IN TXT "v=STSv1; id=20261127"`,
      `mta-sts.${domain}. IN A ${web}`,
    );
  }
  dns = await startDns(zone.join('\n') + '\n');
  s = await startServer({ dns: dns.endpoint, env: { NODE_EXTRA_CA_CERTS: ca.cert } });
});

after(async () => {
  await s?.stop();
  await good?.stop();
  await untrusted?.stop();
  await unknownCa?.stop();
  https?.close();
  dns?.stop();
});

interface Shown {
  attempts: { outcome: string; reply: string; tls: string | null; tlsVerified: boolean | null }[];
}

async function firstAttempt(id: string): Promise<Shown['attempts'][number]> {
  for (let i = 0; i < 100; i++) {
    const r = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
    const a = r.code === 0 ? (JSON.parse(r.stdout) as Shown).attempts[0] : undefined;
    if (a) return a;
    await sleep(100);
  }
  throw new Error(`no attempt recorded for ${id}`);
}

test('enforce: an MX named by the policy with a valid certificate gets the mail, verified', async () => {
  const id = await submit(s, 'a@good.test');
  const m = (await good.waitFor(1))[0];
  assert.equal(m?.tls, true);
  const a = await firstAttempt(id);
  assert.equal(a.outcome, 'delivered');
  assert.equal(a.tlsVerified, true);
});

test('enforce: an MX whose certificate does not verify is not used, not even in plaintext', async () => {
  const id = await submit(s, 'b@untrusted.test');
  const a = await firstAttempt(id);
  assert.equal(a.outcome, 'transient');
  assert.match(a.reply, /^451 4\.7\.5 TLS with mx\.untrusted\.test/);
  assert.equal((await untrusted.messages()).length, 0);
});

test('a certificate from an unknown CA: the 451 and `posta queue list` quote no Node.js advice', async () => {
  const id = await submit(s, 'u@unknownca.test');
  const a = await firstAttempt(id);
  assert.match(
    a.reply,
    /^451 4\.7\.5 TLS with mx\.unknownca\.test .*unable to verify the first certificate$/,
  );
  const list = await posta(['queue', 'list', '--dir', s.dir]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /unable to verify the first certificate/);
  assert.doesNotMatch(list.stdout + a.reply, /Node\.js|use-system-ca/);
  assert.equal((await unknownCa.messages()).length, 0);
});

test('enforce: an MX the policy does not name is skipped and the message waits', async () => {
  const before = (await good.messages()).length;
  const id = await submit(s, 'c@wrongmx.test');
  const a = await firstAttempt(id);
  assert.equal(a.outcome, 'transient');
  assert.match(a.reply, /MX mx\.wrongmx\.test is not in the MTA-STS policy of wrongmx\.test/);
  assert.equal((await good.messages()).length, before);
});
