import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientNetwork } from './ip.ts';

test('clientNetwork: the /24 of an IPv4 address, the /64 of an IPv6 one', () => {
  for (const [ip, net] of [
    ['192.0.2.77', '192.0.2.0/24'],
    ['::ffff:192.0.2.77', '192.0.2.0/24'],
    ['2001:db8:1:2:3:4:5:6', '2001:0db8:0001:0002::/64'],
    ['2001:db8::1', '2001:0db8:0000:0000::/64'],
    ['fe80::1%eth0', 'fe80:0000:0000:0000::/64'],
  ]) {
    assert.equal(clientNetwork(ip!), net, ip);
  }
});
