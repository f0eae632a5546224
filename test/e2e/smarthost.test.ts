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
import nodemailer from 'nodemailer';
import { posta } from '../helpers/posta.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type Receiver } from '../helpers/receiver.ts';

let mxDns: DnsServer;
let relayDns: DnsServer;
let rx: Receiver;
let smarthost: TestServer;
let s: TestServer;

before(async () => {
  const mx = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`] });
  mxDns = await startDns(
    [SOA('test'), 'dest.test. IN MX 10 mx.dest.test.', `mx.dest.test. IN A ${mx}`, ''].join('\n'),
  );
  smarthost = await startServer({ dns: mxDns.endpoint });
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
  await rx?.stop();
  mxDns?.stop();
  relayDns?.stop();
});

test('all mail goes through the relay with STARTTLS and AUTH, and arrives', async () => {
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submission,
    auth: { user: s.user, pass: s.password },
    tls: { rejectUnauthorized: false },
  });
  const info = await t.sendMail({
    from: s.user,
    to: 'olga@dest.test',
    subject: 'relayed',
    text: 'x',
  });
  t.close();
  const id = /queued as (\S+)/.exec(info.response)?.[1] ?? '';
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
