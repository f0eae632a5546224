/**
 * The dashboard in a real browser: Debian's Chromium, driven headless by
 * playwright-core, against a real `posta serve` that has delivered, deferred
 * and bounced mail through a loopback MX (aiosmtpd). Screenshots of each page
 * go to a folder the test prints. And what a browser must not be able to do
 * across sites, or with a rebound Host, checked with raw HTTP requests.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import nodemailer from 'nodemailer';
import { posta, tempDir } from '../helpers/posta.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { submit } from '../helpers/smtp.ts';
import { rawRequest, type RawAnswer } from '../helpers/dashboard.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let s: TestServer;
let browser: Browser;
let shots: string;
let hook: Server;
let keyId = '';
/** Where raw() connects from: failed logins are counted per client address. */
let clientAddress: string | undefined;
const ids: Record<string, string> = {};

const base = () => `http://${s.host}:${s.ports.http}`;

async function link(): Promise<string> {
  const r = await posta(['admin', 'link', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

/**
 * Waits for the page's status (or alert) line to say `text`: an htmx action
 * swaps the new page in after the click returns, so the old line may be there.
 */
async function said(page: Page, role: 'status' | 'alert', text: RegExp): Promise<void> {
  await page.locator(`[role=${role}]`, { hasText: text }).waitFor();
}

/** What the page's Content-Security-Policy blocked, as the browser's console says it. */
function cspBlocked(page: Page): string[] {
  const blocked: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text()))
      blocked.push(`${page.url()}: ${m.text()}`);
  });
  return blocked;
}

async function shot(page: Page, name: string) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** A raw request, so the Host header and any other can be what a test wants. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body = '',
): Promise<RawAnswer> {
  const host = `${s.host}:${s.ports.http}`;
  return rawRequest(
    request,
    {
      host: s.host,
      port: s.ports.http,
      localAddress: clientAddress,
      method,
      path,
      headers: { host, ...headers },
    },
    body,
  );
}

/** A session cookie and its token, from a login link, as a browser would get them. */
async function session(): Promise<{ cookie: string; csrf: string }> {
  const r = await raw('GET', new URL(await link()).pathname);
  assert.equal(r.status, 303);
  const set = String(r.headers['set-cookie']);
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  const cookie = set.split(';')[0] ?? '';
  const page = await raw('GET', '/queue', { cookie });
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)?.[1] ?? '';
  assert.ok(csrf);
  return { cookie, csrf };
}

before(async () => {
  mx = await startMxFor('dest.test');
  // a webhook endpoint that is down: the webhooks page shows its failed calls
  hook = createServer((_req, res) => res.writeHead(503).end('down for maintenance'));
  const hookHost = randomLoopback();
  await new Promise<void>((resolve) => hook.listen(0, hookHost, resolve));
  const hookPort = (hook.address() as { port: number }).port;
  s = await startServer({
    dns: mx.dns.endpoint,
    http: true,
    extraToml: [
      '[webhooks.app]',
      `url = "http://${hookHost}:${hookPort}/hook"`,
      'format = "posta"',
    ].join('\n'),
  });
  const made = await posta([
    'key',
    'create',
    '--domain',
    'example.test',
    '--name',
    'shop',
    '--json',
    '--dir',
    s.dir,
  ]);
  assert.equal(made.code, 0, made.stderr);
  keyId = (JSON.parse(made.stdout) as { access_key_id: string }).access_key_id;
  // delivered, bounced, deferred (once: it delivers on its retry), deferred for good
  ids.delivered = await submit(s, 'ok@dest.test', 'delivered one');
  ids.bounced = await submit(s, 'reject@dest.test', 'bounced one');
  ids.retried = await submit(s, 'tempfail1@dest.test', 'deferred once');
  ids.deferred = await submit(s, 'always-tempfail@dest.test', 'deferred for good');
  await s.logged(0, '"outcome":"transient"', 15_000);
  for (let i = 0; i < 100 && !(await mx.rx.messages()).length; i++) await sleep(100);
  shots = await tempDir('posta-dashboard-shots-');
  await mkdir(shots, { recursive: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await s?.stop();
  await mx?.stop();
  hook?.close();
});

test('in Chromium: a login link opens the overview; the queue, a timeline, a retry that delivers, a delete', async (t) => {
  t.diagnostic(`screenshots in ${shots}`);
  const page = await browser.newPage();
  const blocked = cspBlocked(page);
  // not logged in: the login page
  await page.goto(`${base()}/queue`);
  assert.equal(new URL(page.url()).pathname, '/login');
  assert.match(await page.locator('main').innerText(), /No admin password is set/);
  await shot(page, 'login');

  await page.goto(await link());
  assert.equal(new URL(page.url()).pathname, '/');
  await shot(page, 'overview');
  assert.equal(await page.locator('h1').innerText(), 'Overview');
  assert.equal(await page.locator('#queue-messages').innerText(), '2');
  const lastHour = await page.locator('#last-hour td').allInnerTexts();
  // delivered, transient, permanent, expired
  assert.ok(Number(lastHour[0]) >= 1, `delivered: ${lastHour.join(' ')}`);
  assert.ok(Number(lastHour[1]) >= 2, `transient: ${lastHour.join(' ')}`);
  assert.ok(Number(lastHour[2]) >= 1, `permanent: ${lastHour.join(' ')}`);
  assert.match(await page.locator('main').innerText(), /example\.test: DKIM selectors \S+/);
  // each domain's DNS health, loaded by htmx after the page (doctor's checks: the test DNS
  // has no example.test), with a link to its checks
  await page.locator('#dns-health ul').waitFor();
  await page.locator('#chart-hour canvas').waitFor();
  await shot(page, 'overview-health');
  assert.match(
    await page.locator('#dns-health li').innerText(),
    /^example\.test: \d+ failures?(, \d+ warnings?)? \(the checks of example\.test\)$/,
  );
  assert.equal(
    await page.getByRole('link', { name: 'the checks of example.test' }).getAttribute('href'),
    '/domains/example.test/check',
  );
  // the charts: drawn by uPlot, from series with the mail of this test in them
  await page.locator('#chart-week canvas').waitFor();
  for (const id of ['#chart-hour', '#chart-week']) {
    const series = JSON.parse((await page.locator(id).getAttribute('data-series')) ?? '{}') as {
      counts: Record<string, number[]>;
    };
    const sum = (o: string) => (series.counts[o] ?? []).reduce((a, b) => a + b, 0);
    assert.equal(sum('accepted'), 4, id);
    assert.equal(sum('delivered'), 1, id);
    assert.ok(sum('deferred') >= 2, id);
    assert.ok(sum('bounced') >= 1, id);
  }
  assert.match(
    (await page.locator('#chart-hour').getAttribute('aria-label')) ?? '',
    /^Per minute, last hour: 4 accepted, 1 delivered, \d+ deferred, \d+ bounced$/,
  );
  const other = await page.locator('#destinations tr', { hasText: 'other' }).allInnerTexts();
  assert.match(other[0] ?? '', /^other\t1\t\d+\t\d+\t\d+\.\d%\t\d+\.\d%$/);

  await page.getByRole('link', { name: 'Queue', exact: true }).click();
  await shot(page, 'queue');
  const byDomain = await page.locator('#destinations-queue tbody tr').allInnerTexts();
  assert.deepEqual(byDomain.length, 1, byDomain.join('\n'));
  assert.match(byDomain[0] ?? '', /^dest\.test\t2\t2\t0\t\d+ s\t451 4\.3\.0 try again later$/);
  const rows = page.locator('#messages tbody tr');
  assert.equal(await rows.count(), 2);
  const row = rows.filter({ hasText: 'tempfail1@dest.test' });
  assert.match(await row.innerText(), /451 4\.3\.0 try again later/);

  await row.getByRole('link', { name: ids.retried }).click();
  assert.equal(new URL(page.url()).pathname, `/queue/${ids.retried}`);
  await shot(page, 'message');
  const timeline = await page.locator('#attempts').innerText();
  assert.match(
    timeline,
    /tempfail1@dest\.test\ttransient\tmx\.dest\.test\t127\.\d+\.\d+\.\d+\tTLSv1\.3, not verified\t451 4\.3\.0 try again later/,
  );
  assert.equal(await page.locator('#state').innerText(), 'queued');

  // the actions go through htmx: the confirmation and the result are swapped into this page
  // (in the page's own script: strings, as this project's types have no DOM)
  await page.evaluate('window.notReloaded = true');
  await page.getByRole('link', { name: 'Retry now' }).click();
  await page.waitForURL(`${base()}/queue/${ids.retried}/retry`);
  await shot(page, 'confirm-retry');
  await page.getByRole('button', { name: 'Retry now' }).click();
  await said(page, 'status', /1 recipients are due now/);
  assert.equal(new URL(page.url()).pathname, `/queue/${ids.retried}`);
  assert.equal(await page.evaluate('window.notReloaded'), true, 'the page was not reloaded');
  // the focus is where a new page's would be read from: its status line
  assert.equal(await page.evaluate("document.activeElement.getAttribute('role')"), 'status');
  assert.equal((await s.logged(0, '"msg":"dashboard: retry now"')).length, 1);
  let state = '';
  for (let i = 0; i < 100 && state !== 'done: no recipient left to deliver'; i++) {
    await sleep(200);
    await page.reload();
    state = await page.locator('#state').innerText();
  }
  assert.equal(state, 'done: no recipient left to deliver');
  assert.match(
    await page.locator('#attempts').innerText(),
    /tempfail1@dest\.test\tdelivered\tmx\.dest\.test/,
  );
  await shot(page, 'message-delivered');
  assert.ok((await mx.rx.messages()).some((m) => m.rcptTos.includes('tempfail1@dest.test')));

  // find a message by its recipient, delivered and gone from the queue
  await page.getByRole('link', { name: 'Search' }).click();
  await page.getByLabel('In', { exact: true }).selectOption('to');
  await page.getByLabel('Text', { exact: true }).fill('TEMPFAIL1@dest');
  await page.getByRole('button', { name: 'Search' }).click();
  await shot(page, 'search');
  const results = await page.locator('#results tbody tr').allInnerTexts();
  assert.equal(results.length, 1, results.join('\n'));
  assert.match(
    results[0] ?? '',
    new RegExp(
      `^${ids.retried}\\t.*\\ti@example\\.test\\ttempfail1@dest\\.test\\tdeferred once\\tdelivered$`,
    ),
  );
  await page.getByRole('link', { name: ids.retried }).click();
  assert.equal(new URL(page.url()).pathname, `/queue/${ids.retried}`);
  assert.match(await page.locator('main').innerText(), /Subject\s+deferred once/);

  // hold and release, seen by the CLI too
  await page.goto(`${base()}/queue/${ids.deferred}`);
  await page.getByRole('link', { name: 'Hold' }).click();
  await page.getByRole('button', { name: 'Hold the message' }).click();
  assert.equal(await page.locator('#state').innerText(), 'held');
  await shot(page, 'message-held');
  const heldList = await posta(['queue', 'list', '--dir', s.dir]);
  assert.match(heldList.stdout, /<always-tempfail@dest\.test>\s+held/);
  await page.getByRole('link', { name: 'Release' }).click();
  await page.getByRole('button', { name: 'Release the message' }).click();
  await said(page, 'status', /1 recipients are released/);
  assert.equal(await page.locator('#state').innerText(), 'queued');
  await page.goto(`${base()}/queue/${ids.deferred}`);
  await page.getByRole('link', { name: 'Delete' }).click();
  await page.getByRole('button', { name: 'Delete the message' }).click();
  await page.waitForURL(/\/queue\?done=/);
  await said(page, 'status', new RegExp(`Message ${ids.deferred} is deleted`));
  assert.match(await page.locator('main').innerText(), /The queue is empty/);
  await shot(page, 'queue-empty');
  const r = await posta(['queue', 'list', '--dir', s.dir]);
  assert.doesNotMatch(r.stdout, new RegExp(ids.deferred ?? 'none'));
  assert.equal((await s.logged(0, '"msg":"dashboard: message deleted"')).length, 1);

  // an alias added and removed in the browser, in the file as the CLI writes it
  await page.getByRole('link', { name: 'Domains' }).click();
  await page.getByLabel('Alias (local part', { exact: false }).fill('Team');
  await page.getByLabel('Forwards to').fill('a@dest.test, b');
  // (each edit waits for the server to re-read the folder: the SMTP AUTH below needs the
  // accounts' edit to be the last one it read)
  await s.reload(async () => {
    await page.getByRole('button', { name: 'Add the alias' }).click();
    await said(page, 'status', /team@example\.test: a@dest\.test, b@example\.test/);
  });
  await shot(page, 'domains');
  const aliases = join(s.dir, 'domains/example.test/aliases');
  assert.match(await readFile(aliases, 'utf8'), /^team: a@dest\.test, b@example\.test$/m);
  const listed = await posta(['alias', 'list', 'example.test', '--dir', s.dir]);
  assert.match(listed.stdout, /^team@example\.test: a@dest\.test, b@example\.test$/m);
  await s.reload(async () => {
    await page.getByRole('button', { name: 'Remove team@example.test' }).click();
    await said(page, 'status', /Removed team@example\.test/);
  });
  assert.doesNotMatch(await readFile(aliases, 'utf8'), /^team:/m);
  // the DNS check, run on demand: doctor's checks (the test DNS has no example.test) and the records
  await page.getByRole('link', { name: 'Check the DNS of example.test' }).click();
  await shot(page, 'domain-check');
  const checks = await page.locator('#checks').innerText();
  assert.match(checks, /^MX\t✗ fail\texample\.test has no MX record\tpublish .+$/m);
  assert.match(checks, /^DKIM\t✗ fail\t/m);
  assert.match(checks, /^Listeners\t✓ pass\t/m);
  assert.match(
    await page.locator('#zone').innerText(),
    /^\S+\._domainkey\.example\.test\.\s+\d+\s+IN\s+TXT\s+"v=DKIM1; k=rsa;/m,
  );
  await page.getByRole('link', { name: 'Back to the domains' }).click();

  // a bad target is refused with the CLI's sentence, and nothing is written
  await page.getByLabel('Alias (local part', { exact: false }).fill('x');
  await page.getByLabel('Forwards to').fill('|/bin/sh');
  await page.getByRole('button', { name: 'Add the alias' }).click();
  await said(page, 'alert', /is a pipe target/);
  assert.doesNotMatch(await readFile(aliases, 'utf8'), /^x:/m);

  // an account added in the browser: in the users file as `posta user add` writes it (the CLI
  // wrote i@'s line), and it sends by SMTP AUTH with the password set here
  const users = join(s.dir, 'domains/example.test/users');
  const usersBefore = await readFile(users, 'utf8');
  await s.reload(async () => {
    await page.getByLabel('Account (local part', { exact: false }).fill('Web');
    await page.getByLabel('Password for the account', { exact: false }).fill('web password one');
    await page.getByRole('button', { name: 'Add the account' }).click();
    await said(page, 'status', /^Added the account web@example\.test\.$/);
  });
  await shot(page, 'accounts');
  // on a phone: nothing wider than the screen (a wide table scrolls in its own box)
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'accounts-phone');
  assert.ok(
    Number(await page.evaluate('document.documentElement.scrollWidth')) <= 390,
    'the page fits a phone',
  );
  await page.setViewportSize({ width: 1280, height: 720 });
  const usersAfter = await readFile(users, 'utf8');
  const line = /^web (\S+)$/m.exec(usersAfter);
  assert.ok(line, usersAfter);
  assert.equal(usersAfter, `${usersBefore}web ${line[1]}\n`);
  const cliHash = /^i (\S+)$/m.exec(usersBefore)?.[1] ?? '';
  const params = (h: string) => h.split('$').slice(0, 4).join('$');
  assert.match(cliHash, /^\$argon2id\$/);
  assert.equal(params(line[1] ?? ''), params(cliHash), 'the same scheme and parameters as the CLI');
  assert.doesNotMatch(await page.content(), /\$argon2/, 'no hash is shown');
  assert.match(
    await page.locator('#accounts-example\\.test').innerText(),
    /^web@example\.test\titself\t/m,
  );
  const auth = async (pass: string) => {
    const t = nodemailer.createTransport({
      host: s.host,
      port: s.ports.submission,
      auth: { user: 'web@example.test', pass },
      tls: { rejectUnauthorized: false },
    });
    try {
      return await t.verify().then(
        () => 'ok',
        (err: Error) => err.message,
      );
    } finally {
      t.close();
    }
  };
  assert.equal(await auth('web password one'), 'ok');
  assert.match(
    (await posta(['user', 'list', 'example.test', '--dir', s.dir])).stdout,
    /^web@example\.test$/m,
  );
  // a new password, then the account removed
  await s.reload(async () => {
    await page.getByLabel('New password of web@example.test').fill('web password two');
    await page.getByRole('button', { name: 'Change the password of web@example.test' }).click();
    await said(page, 'status', /Changed the password of web@example\.test/);
  });
  assert.equal(await auth('web password two'), 'ok');
  assert.match(await auth('web password one'), /535/);
  // too short a password is refused with the CLI's sentence, and nothing is written
  await page.getByLabel('Account (local part', { exact: false }).fill('short');
  await page.getByLabel('Password for the account', { exact: false }).fill('short');
  // past the browser's own check of the length, to the server's
  await page.evaluate(
    "document.querySelectorAll('[minlength]').forEach((e) => e.removeAttribute('minlength'))",
  );
  await page.getByRole('button', { name: 'Add the account' }).click();
  await said(page, 'alert', /at least 8 characters/);
  assert.doesNotMatch(await readFile(users, 'utf8'), /^short /m);
  await s.reload(async () => {
    await page.getByRole('button', { name: 'Remove the account web@example.test' }).click();
    await said(page, 'status', /Removed the account web@example\.test/);
  });
  assert.equal(await readFile(users, 'utf8'), usersBefore);
  assert.match(await auth('web password two'), /535/);
  assert.equal((await s.logged(0, '"msg":"dashboard: accounts changed"')).length, 3);

  // a suppression added and removed
  await page.getByRole('link', { name: 'Suppression' }).click();
  await page.getByLabel('Address').fill('Blocked@Dest.test');
  await page.getByRole('button', { name: 'Suppress' }).click();
  await said(page, 'status', /blocked@dest\.test is suppressed/i);
  await shot(page, 'suppression');
  assert.match(
    await page.locator('#suppressed').innerText(),
    /example\.test\tblocked@dest\.test\tBOUNCE/i,
  );
  const sup = await posta(['suppress', 'list', '--domain', 'example.test', '--dir', s.dir]);
  assert.match(sup.stdout, /blocked@dest\.test/i);
  await page.getByRole('button', { name: /^Remove blocked@dest\.test/i }).click();
  await said(page, 'status', /no longer suppressed/);
  // the hard bounce of reject@ put it there by itself; blocked@ is gone
  const left = await page.locator('#suppressed').innerText();
  assert.match(left, /reject@dest\.test/);
  assert.doesNotMatch(left, /blocked@dest\.test/i);
  const none = await posta(['suppress', 'list', '--domain', 'example.test', '--dir', s.dir]);
  assert.doesNotMatch(none.stdout, /blocked@dest\.test/i);

  // the access keys, and the webhook endpoint with its failed calls
  await page.getByRole('link', { name: 'API keys' }).click();
  assert.match(
    await page.locator('#keys').innerText(),
    new RegExp(`${keyId}\\tshop\\texample\\.test\\t14/s, 50000/day\\t0\\t.*\\tin use`),
  );
  await page.getByRole('link', { name: 'Webhooks' }).click();
  let calls = '';
  for (let i = 0; i < 50 && !/503/.test(calls); i++) {
    await page.reload();
    calls = await page.locator('main').innerText();
    if (!/503/.test(calls)) await sleep(200);
  }
  await shot(page, 'webhooks');
  assert.match(calls, /http:\/\/127\.\d+\.\d+\.\d+:\d+\/hook \(posta\)/);
  assert.match(calls, /\d+ calls? failed in a row/);
  assert.match(calls, /\t\d+\t503\t/);

  // the first message's page: its header fields (kept for account mail), its events, and the
  // webhook calls made for them (the endpoint is down, so its Send is retried)
  await page.goto(`${base()}/queue/${ids.delivered}`);
  assert.match(await page.locator('#headers').innerText(), /^Subject\tdelivered one$/m);
  assert.match(await page.locator('#events').innerText(), /Send: ok@dest\.test/);
  assert.match(await page.locator('#message-calls').innerText(), /\tapp\t\d+\t503\tHTTP 503/);

  // the overview's counters follow the server without a reload (server-sent events)
  await page.goto(`${base()}/`);
  const before = Number(await page.locator('#queue-messages').innerText());
  await submit(s, 'always-tempfail@dest.test', 'one more');
  let now = before;
  for (let i = 0; i < 50 && now === before; i++) {
    await sleep(200);
    now = Number(await page.locator('#queue-messages').innerText());
  }
  assert.equal(now, before + 1, 'the live counter moved');

  // the bounced message's timeline says why
  await page.goto(`${base()}/queue/${ids.bounced}`);
  assert.match(
    await page.locator('#attempts').innerText(),
    /reject@dest\.test\tpermanent\t.*550 5\.1\.1/,
  );
  // htmx and the pages' scripts live within the Content-Security-Policy (no inline style, no eval)
  assert.deepEqual(blocked, []);
  await page.close();
});

test('in Chromium: an htmx action without the session token, or after the session ended, is refused and the page says so', async () => {
  const page = await browser.newPage();
  const blocked = cspBlocked(page);
  await page.goto(await link());
  await page.goto(`${base()}/domains`);
  const aliases = join(s.dir, 'domains/example.test/aliases');
  const addAlias = async (local: string) => {
    await page.getByLabel('Alias (local part', { exact: false }).fill(local);
    await page.getByLabel('Forwards to').fill('a@dest.test');
    await page.getByRole('button', { name: 'Add the alias' }).click();
  };
  // a form whose token is not the session's
  await page.evaluate(
    "document.querySelectorAll('input[name=csrf]').forEach((i) => { i.value = 'guess'; })",
  );
  await addAlias('nope');
  await said(page, 'alert', /^Refused \(403\): The request lacks this session's token/);
  await shot(page, 'refused-token');
  assert.equal(new URL(page.url()).pathname, '/domains');
  assert.doesNotMatch(await readFile(aliases, 'utf8'), /^nope:/m);

  // the session ended (logged out in another tab): 401
  await page.reload();
  const csrf = await page.locator('input[name=csrf]').first().inputValue();
  const cookie = (await page.context().cookies()).find((c) => c.name === 'posta_session');
  assert.ok(cookie);
  const form = {
    cookie: `posta_session=${cookie.value}`,
    'content-type': 'application/x-www-form-urlencoded',
    'sec-fetch-site': 'same-origin',
  };
  assert.equal((await raw('POST', '/logout', form, `csrf=${csrf}`)).status, 303);
  await addAlias('nope');
  await said(page, 'alert', /^Refused \(401\): Log in first/);
  assert.doesNotMatch(await readFile(aliases, 'utf8'), /^nope:/m);
  assert.deepEqual(blocked, [], 'actions.js within the Content-Security-Policy');
  await page.close();

  // what htmx would send from a page on another site, and without the token
  const fresh = await session();
  const hx = {
    cookie: fresh.cookie,
    'content-type': 'application/x-www-form-urlencoded',
    'hx-request': 'true',
  };
  const body = `csrf=${fresh.csrf}&local=nope&targets=a%40dest.test`;
  const cross = await raw(
    'POST',
    '/domains/example.test/aliases',
    { ...hx, 'sec-fetch-site': 'cross-site' },
    body,
  );
  assert.equal(cross.status, 403);
  assert.equal(cross.text, 'A request from another site is refused.\n');
  const noToken = await raw(
    'POST',
    '/domains/example.test/aliases',
    { ...hx, 'sec-fetch-site': 'same-origin' },
    'local=nope&targets=a%40dest.test',
  );
  assert.equal(noToken.status, 403);
  assert.match(noToken.text, /lacks this session's token/);
  assert.doesNotMatch(await readFile(aliases, 'utf8'), /^nope:/m);
  // the token in htmx's header is as good as the form's
  await s.reload(async () => {
    const inHeader = await raw(
      'POST',
      '/domains/example.test/aliases',
      { ...hx, 'sec-fetch-site': 'same-origin', 'x-csrf-token': fresh.csrf },
      'local=yes&targets=a%40dest.test',
    );
    assert.equal(inHeader.status, 303);
  });
  assert.match(await readFile(aliases, 'utf8'), /^yes: a@dest\.test$/m);
});

test('in Chromium without JavaScript: the same forms post and redirect, and the DNS health has its link', async () => {
  const context = await browser.newContext({ javaScriptEnabled: false });
  const page = await context.newPage();
  await page.goto(await link());
  await page.getByRole('link', { name: 'Check the DNS of each domain' }).click();
  assert.equal(new URL(page.url()).pathname, '/domains/health');
  assert.match(await page.locator('#dns-health li').innerText(), /^example\.test: \d+ failures?/);
  await shot(page, 'dns-health-nojs');

  await page.goto(`${base()}/domains`);
  const users = join(s.dir, 'domains/example.test/users');
  await s.reload(async () => {
    await page.getByLabel('Account (local part', { exact: false }).fill('plain@example.test');
    await page.getByLabel('Password for the account', { exact: false }).fill('plain password');
    await page.getByLabel('It may send as any address', { exact: false }).check();
    await page.getByRole('button', { name: 'Add the account' }).click();
  });
  assert.equal(new URL(page.url()).pathname, '/domains');
  assert.match(await page.locator('[role=status]').innerText(), /Added the account plain@/);
  assert.match(await readFile(users, 'utf8'), /^plain \$argon2id\$\S+ send-as=domain$/m);
  assert.match(
    (await posta(['user', 'list', 'example.test', '--dir', s.dir])).stdout,
    /^plain@example\.test\tsend-as=domain$/m,
  );
  await s.reload(() =>
    page.getByRole('button', { name: 'Remove the account plain@example.test' }).click(),
  );
  assert.match(await page.locator('[role=status]').innerText(), /Removed the account plain@/);
  assert.doesNotMatch(await readFile(users, 'utf8'), /^plain /m);
  await context.close();
});

test('a login link works once; the admin password logs in, and failed logins are limited', async () => {
  const url = new URL(await link());
  assert.equal((await raw('GET', url.pathname)).status, 303);
  const again = await raw('GET', url.pathname);
  assert.equal(again.status, 401);
  assert.match(again.text, /used already or has expired/);

  const set = await posta(['admin', 'password', '--password', 'admin secret', '--dir', s.dir]);
  assert.equal(set.code, 0, set.stderr);
  const form = {
    'content-type': 'application/x-www-form-urlencoded',
    'sec-fetch-site': 'same-origin',
  };
  const good = await raw('POST', '/login', form, 'password=admin+secret');
  assert.equal(good.status, 303);
  assert.match(String(good.headers['set-cookie']), /^posta_session=/);
  for (let i = 0; i < 5; i++) {
    assert.equal((await raw('POST', '/login', form, 'password=wrong')).status, 401);
  }
  const limited = await raw('POST', '/login', form, 'password=admin+secret');
  assert.equal(limited.status, 429);
  assert.match(limited.text, /Too many failed logins/);

  // from another client: a new name for each guess does not buy more guesses
  const was = clientAddress;
  clientAddress = randomLoopback();
  try {
    const codes: number[] = [];
    for (let i = 0; i < 25; i++) {
      const r = await raw('POST', '/login', form, `address=u${i}%40example.test&password=x`);
      codes.push(r.status);
    }
    assert.deepEqual(codes.slice(0, 20), Array<number>(20).fill(401));
    assert.deepEqual(codes.slice(20), Array<number>(5).fill(429));
    // text that is no address is one name, however it is spelled
    clientAddress = randomLoopback();
    for (let i = 0; i < 5; i++) {
      const r = await raw('POST', '/login', form, `address=junk${'x'.repeat(i)}&password=x`);
      assert.equal(r.status, 401);
    }
    assert.equal((await raw('POST', '/login', form, 'address=junk!&password=x')).status, 429);
  } finally {
    clientAddress = was;
  }
});

test('cross-site POSTs, a wrong Host, a missing session token and a stale cookie are refused', async () => {
  const { cookie, csrf } = await session();
  const id = await submit(s, 'always-tempfail@dest.test', 'to be kept');
  await s.logged(0, id);
  const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
  const kept = async () => (await posta(['queue', 'list', '--dir', s.dir])).stdout.includes(id);

  // a page on another site posting a form to loopback
  const cross = await raw(
    'POST',
    `/queue/${id}/delete`,
    { ...form, 'sec-fetch-site': 'cross-site' },
    `csrf=${csrf}`,
  );
  assert.equal(cross.status, 403);
  const origin = await raw(
    'POST',
    `/queue/${id}/delete`,
    { ...form, origin: 'http://evil.test' },
    `csrf=${csrf}`,
  );
  assert.equal(origin.status, 403);
  // no other method is read, so none can make the server hold a body
  const put = await raw('PUT', `/queue/${id}`, { ...form, 'sec-fetch-site': 'same-origin' }, 'x');
  assert.equal(put.status, 405);
  // DNS rebinding: the browser sends the attacker's name as Host
  const rebound = await raw('GET', '/', { cookie, host: `evil.test:${s.ports.http}` });
  assert.equal(rebound.status, 421);
  assert.doesNotMatch(rebound.text, /Overview/);
  // same-origin, but without the session's token
  const token = await raw(
    'POST',
    `/queue/${id}/delete`,
    { ...form, 'sec-fetch-site': 'same-origin' },
    'csrf=guess',
  );
  assert.equal(token.status, 403);
  assert.ok(await kept());

  // logged out, the cookie opens nothing
  const out = await raw(
    'POST',
    '/logout',
    { ...form, 'sec-fetch-site': 'same-origin' },
    `csrf=${csrf}`,
  );
  assert.equal(out.status, 303);
  assert.equal((await raw('GET', '/', { cookie })).headers.location, '/login');
  const stale = await raw(
    'POST',
    `/queue/${id}/delete`,
    { ...form, 'sec-fetch-site': 'same-origin' },
    `csrf=${csrf}`,
  );
  assert.equal(stale.status, 401);
  assert.ok(await kept());

  // and with all of it right, the same request acts
  const fresh = await session();
  const ok = await raw(
    'POST',
    `/queue/${id}/delete`,
    {
      cookie: fresh.cookie,
      'content-type': 'application/x-www-form-urlencoded',
      'sec-fetch-site': 'same-origin',
    },
    `csrf=${fresh.csrf}`,
  );
  assert.equal(ok.status, 303);
  assert.ok(!(await kept()));
});

test('an account logs in with its own password and sees only its own mail, with no actions', async () => {
  const other = 'other@example.test';
  const pw = 'another horse battery';
  await s.reload(() => posta(['user', 'add', other, '--password', pw, '--dir', s.dir]));
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submission,
    auth: { user: other, pass: pw },
    tls: { rejectUnauthorized: false },
  });
  const info = await t.sendMail({
    from: other,
    to: 'always-tempfail@dest.test',
    subject: 'mine',
    text: 'x',
  });
  t.close();
  const own = /queued as (\S+)/.exec(info.response)?.[1] ?? '';
  assert.ok(own);
  const theirs = await submit(s, 'always-tempfail@dest.test', 'the admin account');

  // another client than the test whose five failed logins locked its address out
  clientAddress = randomLoopback();
  const form = {
    'content-type': 'application/x-www-form-urlencoded',
    'sec-fetch-site': 'same-origin',
  };
  const wrong = await raw(
    'POST',
    '/login',
    form,
    `address=${encodeURIComponent(other)}&password=nope`,
  );
  assert.equal(wrong.status, 401);
  assert.match(wrong.text, /not the address and password of an account/);
  const login = await raw(
    'POST',
    '/login',
    form,
    `address=${encodeURIComponent(other)}&password=${encodeURIComponent(pw)}`,
  );
  assert.equal(login.status, 303);
  assert.equal(login.headers.location, '/queue');
  const cookie = String(login.headers['set-cookie']).split(';')[0] ?? '';

  // an account's good login does not forget this client's guesses at the admin password
  for (let i = 0; i < 4; i++) {
    assert.equal((await raw('POST', '/login', form, 'password=guess')).status, 401);
  }
  const good = `address=${encodeURIComponent(other)}&password=${encodeURIComponent(pw)}`;
  assert.equal((await raw('POST', '/login', form, good)).status, 303);
  assert.equal((await raw('POST', '/login', form, 'password=guess')).status, 401);
  assert.equal((await raw('POST', '/login', form, 'password=guess')).status, 429);
  // nor does it keep the account out
  assert.equal((await raw('POST', '/login', form, good)).status, 303);
  // a login form of 100 KB is refused before it is read; an asset name is only an asset's
  assert.equal((await raw('POST', '/login', form, `password=${'x'.repeat(100_000)}`)).status, 413);
  assert.equal((await raw('GET', '/assets/constructor')).status, 404);

  const queue = await raw('GET', '/queue', { cookie });
  assert.equal(queue.status, 200);
  assert.ok(queue.text.includes(own), 'its own message is listed');
  assert.ok(!queue.text.includes(theirs), "another account's message is not");
  assert.doesNotMatch(queue.text, /By destination/);
  const page = await raw('GET', `/queue/${own}`, { cookie });
  assert.equal(page.status, 200);
  assert.doesNotMatch(page.text, /Retry now|\/delete"/);
  assert.equal((await raw('GET', `/queue/${theirs}`, { cookie })).status, 404);
  const found = await raw('GET', '/search?field=to&q=always-tempfail', { cookie });
  assert.ok(found.text.includes(own) && !found.text.includes(theirs));
  assert.equal((await raw('GET', '/', { cookie })).headers.location, '/queue');
  for (const path of [
    '/domains',
    '/domains/health',
    '/suppression',
    '/keys',
    '/webhooks',
    '/live',
  ]) {
    assert.equal((await raw('GET', path, { cookie })).status, 403, path);
  }
  const csrf = /name="csrf" value="([^"]+)"/.exec(queue.text)?.[1] ?? '';
  const users = await readFile(join(s.dir, 'domains/example.test/users'), 'utf8');
  for (const verb of ['', '/passwd', '/remove']) {
    const path = `/domains/example.test/accounts${verb}`;
    const body = `csrf=${csrf}&address=${encodeURIComponent(other)}&password=taken+over+now`;
    assert.equal((await raw('POST', path, { ...form, cookie }, body)).status, 403, path);
  }
  assert.equal(await readFile(join(s.dir, 'domains/example.test/users'), 'utf8'), users);
  const del = await raw('POST', `/queue/${own}/delete`, { ...form, cookie }, `csrf=${csrf}`);
  assert.equal(del.status, 403);
  assert.match((await posta(['queue', 'list', '--dir', s.dir])).stdout, new RegExp(own));

  // a new password (here by the CLI) ends the sessions opened with the old one
  await s.reload(() =>
    posta(['user', 'passwd', other, '--password', 'a brand new one', '--dir', s.dir]),
  );
  const after = await raw('GET', '/queue', { cookie });
  assert.equal(after.status, 303);
  assert.equal(after.headers.location, '/login');
});
