/**
 * The dashboard on the https listener: with `[dashboard] https = true` a real
 * `posta serve` answers it on port 443 (its test certificate for
 * mail.example.test), a `posta admin link` logs in there with a Secure
 * cookie, and the guard is the http listener's; Chromium opens it by the
 * server's name. With the switch off (the default) the https listener has no
 * dashboard: every path of it is the listener's 404.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { posta, tempDir } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { rawRequest, type RawAnswer } from '../helpers/dashboard.ts';

const NAME = 'mail.example.test';
let on: TestServer;
let off: TestServer;

before(async () => {
  on = await startServer({ http: true, https: true, extraToml: '[dashboard]\nhttps = true' });
  off = await startServer({ http: true, https: true });
});

after(async () => {
  await on?.stop();
  await off?.stop();
});

/** A request to the https listener of `s`, by the server's name (SNI and Host). */
async function get(
  s: TestServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body = '',
): Promise<RawAnswer> {
  const ca = await readFile(s.certFile);
  const options = { host: s.host, port: 443, servername: NAME, ca, method, path };
  return rawRequest(request, { ...options, headers: { host: NAME, ...headers } }, body);
}

/** The path of a fresh one-time login link (`posta admin link` prints the http listener's URL). */
async function linkPath(s: TestServer): Promise<string> {
  const r = await posta(['admin', 'link', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return new URL(r.stdout.trim()).pathname;
}

test('[dashboard] https = true: a login link works on the https listener, with a Secure cookie and the same guard', async () => {
  const login = await get(on, 'GET', await linkPath(on));
  assert.equal(login.status, 303);
  assert.equal(login.headers.location, '/');
  const set = String(login.headers['set-cookie']);
  assert.match(set, /^__Host-posta_session=/);
  assert.match(set, /; Secure/);
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  const cookie = set.split(';')[0] ?? '';

  const overview = await get(on, 'GET', '/', { cookie });
  assert.equal(overview.status, 200);
  assert.match(overview.text, /<h1>Overview<\/h1>/);
  assert.equal(overview.headers['x-frame-options'], 'DENY');
  const csrf = /name="csrf" value="([^"]+)"/.exec(overview.text)?.[1] ?? '';
  assert.ok(csrf);

  // the guard of the http listener: a rebound Host, another site, a missing token
  assert.equal((await get(on, 'GET', '/', { cookie, host: 'evil.test' })).status, 421);
  const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
  const body = `csrf=${csrf}&domain=example.test&address=https-blocked%40dest.test`;
  const cross = await get(
    on,
    'POST',
    '/suppression',
    { ...form, 'sec-fetch-site': 'cross-site' },
    body,
  );
  assert.equal(cross.status, 403);
  const origin = await get(on, 'POST', '/suppression', { ...form, origin: `http://${NAME}` }, body);
  assert.equal(origin.status, 403, 'http:// is another origin than https://');
  const noToken = await get(
    on,
    'POST',
    '/suppression',
    { ...form, origin: `https://${NAME}` },
    'domain=example.test&address=https-blocked%40dest.test',
  );
  assert.equal(noToken.status, 403);
  const done = await get(on, 'POST', '/suppression', { ...form, origin: `https://${NAME}` }, body);
  assert.equal(done.status, 303);
  const listed = await posta(['suppress', 'list', '--domain', 'example.test', '--dir', on.dir]);
  assert.match(listed.stdout, /https-blocked@dest\.test/);

  // the APIs, the unsubscribe pages and the MTA-STS policy are still the listener's
  const sts = await get(on, 'GET', '/.well-known/mta-sts.txt', { host: 'mta-sts.example.test' });
  assert.equal(sts.status, 200);
  assert.match(sts.text, /^version: STSv1/);
  const ses = await get(on, 'GET', '/v2/email/account');
  assert.equal(ses.status, 403, 'the SES v2 API refuses a request without a signature');
  assert.match(String(ses.headers['content-type']), /json/);
  assert.match(ses.text, /"message"/);
  // sharing the dashboard's origin, an API answer is never a page that runs anything
  assert.equal(ses.headers['x-content-type-options'], 'nosniff');
  assert.match(String(ses.headers['content-security-policy']), /default-src 'none'/);
  const sesV1 = await get(
    on,
    'POST',
    '/',
    { 'content-type': 'application/x-www-form-urlencoded' },
    'Action=GetSendQuota&Version=2010-12-01',
  );
  assert.equal(sesV1.status, 403, 'the SES v1 API, not the dashboard, answers a form POST to /');
  assert.match(sesV1.text, /<ErrorResponse/);
  // the login page tells the internet nothing of whether an admin password is set
  const page = await get(on, 'GET', '/login');
  assert.equal(page.status, 200);
  assert.doesNotMatch(page.text, /No admin password is set/);
  const unsubscribe = await get(on, 'GET', `/unsubscribe/${'a'.repeat(26)}`);
  assert.equal(unsubscribe.status, 404, 'a made-up unsubscribe token, not a login redirect');
});

test('[dashboard] https = true in Chromium: the server by its name, logged in by a link', async (t) => {
  const shots = await tempDir('posta-dashboard-https-shots-');
  t.diagnostic(`screenshots in ${shots}`);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', `--host-resolver-rules=MAP ${NAME} ${on.host}`],
  });
  try {
    // the test certificate is self-signed: this context accepts it, as a pinned CA would
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    await page.goto(`https://${NAME}${await linkPath(on)}`);
    assert.equal(page.url(), `https://${NAME}/`);
    assert.equal(await page.locator('h1').innerText(), 'Overview');
    await page.locator('#dns-health ul').waitFor();
    await page.screenshot({ path: join(shots, 'overview-https.png'), fullPage: true });
    const [c] = await context.cookies(`https://${NAME}/`);
    assert.equal(c?.name, '__Host-posta_session');
    assert.equal(c?.secure, true);
    assert.equal(c?.httpOnly, true);
    assert.equal(c?.sameSite, 'Strict');
  } finally {
    await browser.close();
  }
});

test('[dashboard] https off (the default): the https listener serves no dashboard', async () => {
  const login = await get(off, 'GET', await linkPath(off));
  assert.equal(login.status, 404);
  assert.equal(login.text, 'Not found\n');
  assert.equal(login.headers['set-cookie'], undefined);
  assert.equal((await get(off, 'GET', '/')).status, 404);
  assert.equal((await get(off, 'GET', '/login')).status, 404);
  // while its http listener has it
  const http = await fetch(`http://${off.host}:${off.ports.http}/login`);
  assert.equal(http.status, 200);
  assert.match(await http.text(), /<h1>Log in<\/h1>/);
});
