import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dashboardUrl } from './admin.ts';

const at = (host: string, port: number) => ({ host, port });
const config = (http: { host: string; port: number }[], https: boolean, httpsPort = 443) => ({
  hostname: 'mail.example.com',
  dashboard: { https },
  listen: {
    smtp: [],
    submission: [],
    submissions: [],
    http,
    https: [at('0.0.0.0', httpsPort)],
  },
});

test('the dashboard is on the first http listener, a wildcard reached on loopback', () => {
  assert.equal(dashboardUrl(config([at('127.0.0.1', 8025)], false)), 'http://127.0.0.1:8025/');
  assert.equal(dashboardUrl(config([at('::', 8025)], true)), 'http://[::1]:8025/');
});

test('with no http listener, on https://HOSTNAME/ when [dashboard] https serves it there', () => {
  assert.equal(dashboardUrl(config([], true)), 'https://mail.example.com/');
  assert.equal(dashboardUrl(config([], true, 8443)), 'https://mail.example.com:8443/');
  assert.match(dashboardUrl(config([], false)), /no \[listen\] http listener is set/);
});
