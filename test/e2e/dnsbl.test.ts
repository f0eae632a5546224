/**
 * `[inbound] dnsbl`: a client address listed in a DNS blocklist (RFC 5782)
 * gets 554 5.7.1 on port 25; submission is never checked.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp } from '../helpers/smtp.ts';

let dns: DnsServer;
let s: TestServer;

before(async () => {
  // The test clients connect from 127.0.0.1, which this list lists.
  dns = await startDns(`${SOA('bl.test')}\n1.0.0.127.bl.test. IN A 127.0.0.2\n`);
  s = await startServer({
    dns: dns.endpoint,
    extraToml: '[inbound]\ndnsbl = ["clean.test", "bl.test"]',
  });
});

after(async () => {
  await s?.stop();
  dns?.stop();
});

test('a listed client address is refused on port 25 with 554 5.7.1', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    const greeting = await c.reply();
    assert.equal(greeting.code, 554, greeting.raw);
    assert.match(greeting.raw, /5\.7\.1 Your address 127\.0\.0\.1 is listed in bl\.test/);
  } finally {
    c.close();
  }
});

test('submission does not consult the blocklists', async () => {
  const c = await RawSmtp.connect(s.host, s.ports.submission);
  try {
    assert.equal((await c.reply()).code, 220);
  } finally {
    c.close();
  }
});
