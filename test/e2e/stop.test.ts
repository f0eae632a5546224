/**
 * SIGTERM while a delivery hangs (the receiving MX, a tarpit on 127.x.y.z:25,
 * greets and then never answers) and a client sits idle on port 25: posta
 * stops within seconds, exit 0, says so in its log, and the message stays
 * queued for the next start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { posta } from '../helpers/posta.ts';
import { startServer } from '../helpers/server.ts';
import { startDns, SOA } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { submit } from '../helpers/smtp.ts';

test('SIGTERM with a delivery stuck at a silent MX stops in seconds and keeps the message', async (t) => {
  const address = randomLoopback();
  const sockets = new Set<Socket>();
  let heard = '';
  const tarpit = createServer((c) => {
    sockets.add(c);
    c.write('220 tarpit.test ESMTP\r\n'); // and never a word more
    c.on('data', (d: Buffer) => (heard += d.toString()));
    c.on('error', () => {});
  });
  await new Promise<void>((resolve) => tarpit.listen(25, address, resolve));
  t.after(() => {
    for (const c of sockets) c.destroy();
    tarpit.close();
  });
  const dns = await startDns(
    [SOA('test'), 'slow.test. IN MX 10 mx.slow.test.', `mx.slow.test. IN A ${address}`, ''].join(
      '\n',
    ),
  );
  t.after(() => dns.stop());
  const s = await startServer({ dns: dns.endpoint });
  t.after(() => s.stop('SIGKILL'));

  const id = await submit(s, 'someone@slow.test', 'stuck');
  for (let i = 0; i < 200 && !/^EHLO /m.test(heard); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.match(heard, /^EHLO /m, 'posta is in a session with the tarpit');

  // And a client that has said nothing since the greeting: both wait at once.
  const idle = connect(s.ports.smtp, s.host);
  idle.on('error', () => {});
  await new Promise((resolve) => idle.once('data', resolve));
  t.after(() => idle.destroy());

  const started = Date.now();
  await s.stop('SIGTERM');
  const took = Date.now() - started;
  assert.equal(s.child.exitCode, 0, s.logs.slice(-5).join('\n'));
  assert.ok(took < 5000, `stopped after ${took} ms`);
  assert.ok(
    s.logs.some((l) => l.includes('stopping with deliveries in progress')),
    s.logs.slice(-5).join('\n'),
  );
  const listed = await posta(['queue', 'list', '--json', '--dir', s.dir]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(
    (JSON.parse(listed.stdout) as { id: string }[]).map((m) => m.id),
    [id],
    'the message is still queued',
  );
});
