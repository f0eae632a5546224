import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allowedHosts, hostName, LoginLimiter, refuse } from './guard.ts';

const hosts = allowedHosts(['mail.example.com', '127.0.0.1', '0.0.0.0', '::']);
const req = (o: Partial<Parameters<typeof refuse>[0]>) =>
  refuse({
    method: 'POST',
    host: '127.0.0.1:8025',
    origin: undefined,
    fetchSite: undefined,
    scheme: 'http',
    hosts,
    ...o,
  });

test('the Host name is read without its port or brackets', () => {
  assert.equal(hostName('127.0.0.1:8025'), '127.0.0.1');
  assert.equal(hostName('[::1]:8025'), '::1');
  assert.equal(hostName('Mail.Example.com'), 'mail.example.com');
  assert.equal(hostName('::1'), '::1');
  assert.equal(hostName(undefined), '');
});

test("a Host that is not one of the server's names is refused, whatever the method", () => {
  assert.equal(req({ method: 'GET', host: 'evil.test:8025' })?.status, 421);
  assert.equal(req({ method: 'GET', host: undefined })?.status, 421);
  assert.equal(req({ method: 'GET', host: '0.0.0.0:8025' })?.status, 421);
  assert.equal(req({ method: 'GET', host: 'localhost:8025' }), null);
  assert.equal(req({ method: 'GET', host: '[::1]:8025' }), null);
  assert.equal(req({ method: 'GET', host: 'mail.example.com' }), null);
});

test('an unsafe request from another site is refused; Sec-Fetch-Site decides, else Origin', () => {
  assert.equal(req({ fetchSite: 'cross-site' })?.status, 403);
  assert.equal(req({ fetchSite: 'same-site' })?.status, 403);
  assert.equal(req({ fetchSite: 'same-origin' }), null);
  assert.equal(req({ fetchSite: 'none' }), null);
  // a form posted under Referrer-Policy no-referrer has Origin: null, but Sec-Fetch-Site says
  assert.equal(req({ fetchSite: 'same-origin', origin: 'null' }), null);
  assert.equal(req({ origin: 'http://evil.test' })?.status, 403);
  assert.equal(req({ origin: 'https://127.0.0.1:8025' })?.status, 403);
  assert.equal(req({ origin: 'http://127.0.0.1:8025' }), null);
  // neither header: no browser sent it (the session token still applies)
  assert.equal(req({}), null);
  assert.equal(req({ method: 'GET', fetchSite: 'cross-site' }), null);
});

test('five failed logins of one name make a client wait until the first is five minutes old', () => {
  const l = new LoginLimiter();
  const t0 = 1_000_000;
  for (let i = 0; i < 5; i++) {
    assert.equal(l.wait('192.0.2.1', 'admin', t0 + i), 0);
    l.failed('192.0.2.1', 'admin', t0 + i);
  }
  assert.equal(l.wait('192.0.2.1', 'admin', t0 + 10), LoginLimiter.WINDOW_MS - 10);
  assert.equal(l.wait('192.0.2.2', 'admin', t0 + 10), 0, 'another client');
  assert.equal(l.wait('192.0.2.1', 'me@example.test', t0 + 10), 0, 'another name');
  assert.equal(l.wait('192.0.2.1', 'admin', t0 + LoginLimiter.WINDOW_MS + 1), 0);
  l.succeeded('192.0.2.1', 'admin');
  assert.equal(l.wait('192.0.2.1', 'admin', t0 + 10), 0);
});

test('cycling through names: a client waits after CLIENT_LIMIT failures over all of them, and a success does not clear that', () => {
  const l = new LoginLimiter();
  const t0 = 1_000_000;
  for (let i = 0; i < LoginLimiter.CLIENT_LIMIT; i++) {
    assert.equal(l.wait('192.0.2.1', `u${i}@example.test`, t0 + i), 0);
    l.failed('192.0.2.1', `u${i}@example.test`, t0 + i);
  }
  assert.ok(l.wait('192.0.2.1', 'fresh@example.test', t0 + 100) > 0);
  l.succeeded('192.0.2.1', 'u0@example.test');
  assert.ok(l.wait('192.0.2.1', 'admin', t0 + 100) > 0);
  // an IPv6 client is its /64
  for (let i = 0; i < LoginLimiter.CLIENT_LIMIT; i++) l.failed(`2001:db8::${i + 1}`, 'admin', t0);
  assert.ok(l.wait('2001:db8::ffff', 'other', t0 + 1) > 0);
  assert.equal(l.wait('2001:db8:0:1::1', 'other', t0 + 1), 0, 'another /64');
});

test('a flood of failures from many clients cannot push out a client that waits', () => {
  const l = new LoginLimiter();
  const t0 = 1_000_000;
  for (let i = 0; i < 5; i++) l.failed('192.0.2.1', 'admin', t0);
  for (let i = 0; i < LoginLimiter.MAX_KEYS; i++) {
    l.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 'x', t0 + 1);
  }
  assert.ok(l.wait('192.0.2.1', 'admin', t0 + 2) > 0, 'still waiting');
});

test('the table stays bounded even when every client in it waits', () => {
  const l = new LoginLimiter();
  const t0 = 1_000_000;
  for (let i = 0; i < LoginLimiter.MAX_KEYS; i++) {
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    for (let k = 0; k < 5; k++) l.failed(ip, 'admin', t0);
  }
  // the newest still wait; the table did not grow past its bound
  assert.ok(l.wait('10.0.39.15', 'admin', t0 + 1) > 0);
  assert.ok(l.size <= LoginLimiter.MAX_KEYS, `${l.size} keys`);
});
