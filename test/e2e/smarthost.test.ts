/**
 * `[delivery] relay`: for a VPS whose provider blocks outbound port 25, posta
 * hands all mail to a smarthost on its submission port, with STARTTLS (the
 * certificate must verify for the relay's name) and AUTH. The smarthost here
 * is a second posta that serves the same domain and has the same account; it
 * delivers to the receiving MX.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { posta } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type Receiver } from '../helpers/receiver.ts';
import { submit } from '../helpers/smtp.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let relayDns: DnsServer;
let rx: Receiver;
let smarthost: TestServer;
let s: TestServer;

before(async () => {
  mx = await startMxFor('dest.test');
  rx = mx.rx;
  smarthost = await startServer({ dns: mx.dns.endpoint });
  // The sending posta finds only the relay: no MX at all for dest.test.
  relayDns = await startDns(`${SOA('example.test')}\nmail.example.test. IN A ${smarthost.host}\n`);
  s = await startServer({
    dns: relayDns.endpoint,
    extraToml: [
      '[delivery]',
      `relay = "mail.example.test:${smarthost.ports.submission}"`,
      'relay_tls = "starttls"',
      `relay_username = "${smarthost.user}"`,
      'relay_password_file = "relay-password"',
    ].join('\n'),
    env: { NODE_EXTRA_CA_CERTS: smarthost.certFile },
  });
  await writeFile(join(s.dir, 'relay-password'), `${smarthost.password}\n`, { mode: 0o600 });
});

after(async () => {
  await s?.stop();
  await smarthost?.stop();
  await mx?.stop();
  relayDns?.stop();
});

test('all mail goes through the relay with STARTTLS and AUTH, and arrives', async () => {
  const id = await submit(s, 'olga@dest.test', 'relayed', 'x');
  const [m] = await rx.waitFor(1);
  assert.deepEqual(m?.rcptTos, ['olga@dest.test']);
  assert.equal(m?.mailFrom, s.user);
  const received = (m?.data.toString().match(/^Received: /gm) ?? []).length;
  assert.equal(received, 2, 'one Received field per posta');
  const shown = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
  const a = (
    JSON.parse(shown.stdout) as {
      attempts: { outcome: string; mx: string; tls: string; tlsVerified: boolean }[];
    }
  ).attempts[0];
  assert.equal(a?.outcome, 'delivered');
  assert.equal(a?.mx, 'mail.example.test');
  assert.equal(a?.tlsVerified, true);
});
