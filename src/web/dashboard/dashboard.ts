/**
 * The dashboard (hono, server-rendered pages.ts) on the http listener, and on
 * the https one with `[dashboard] https = true` (the same app: its cookie is
 * Secure there): an overview of the server, the queue, and each message's
 * timeline with its actions; the domains, their aliases and accounts are
 * domains.ts's. It reads the same services as the CLI (`posta status`'s
 * Status, queue/inspect.ts, events/events.ts, reports/summary.ts). guard.ts
 * says what a request must pass, htmx's requests included.
 */
import type { IncomingMessage } from 'node:http';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Hono, type Context } from 'hono';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import { getRequestListener } from '@hono/node-server';
import { streamSSE } from 'hono/streaming';
import { bodyLimit } from 'hono/body-limit';
import type { Db } from '../../db/db.ts';
import type { Directory } from '../../domains/directory.ts';
import type { ResolvedConfig } from '../../config/load.ts';
import type { ResolveFn } from '../../dns/resolver.ts';
import { KeyStore } from '../../keys/keys.ts';
import { sentLast24Hours } from '../../keys/usage.ts';
import {
  webhookLog,
  webhookLogOfMessage,
  webhookState,
  withoutCredentials,
} from '../../events/webhooks.ts';
import { listCaptured, readCaptured } from './captured.ts';
import type { Logger } from '../../log/log.ts';
import type { Status } from '../../status/control.ts';
import {
  deleteMessage,
  holdMessage,
  messageAccount,
  messageDetail,
  releaseMessage,
  queueByDomain,
  queueEntries,
  retryMessage,
  searchMessages,
} from '../../queue/inspect.ts';
import { listEvents } from '../../events/events.ts';
import { destinations, statSeries } from '../../stats/stats.ts';
import { verifyPassword } from '../../users/hash.ts';
import { authenticate, findAccount } from '../../users/accounts.ts';
import { HashBusy, HashGate } from '../../users/gate.ts';
import { readAdminHash } from './admin.ts';
import { LoginLimiter, refuse } from './guard.ts';
import {
  createSession,
  credentialOf,
  endSession,
  findSession,
  redeemLink,
  sameToken,
  SESSION_TTL_MS,
  type Session,
} from './sessions.ts';
import * as pages from './pages.ts';
import { reportsPage } from './reports-page.ts';
import { reportSummary } from '../../reports/summary.ts';
import { REPORT_DAYS } from '../../reports/store.ts';
import { domainRoutes } from './domains.ts';
import type { SuppressionList } from '../../suppression/suppression.ts';
import { parseAddress } from '../../address/address.ts';

export interface DashboardDeps {
  /** The config folder (admin-password, aliases), [webhooks], the DNS check (domain-check.ts). */
  config: ResolvedConfig;
  resolve: ResolveFn;
  db: Db;
  /** The suppression lists, where the queue is (QueueStore.suppressions). */
  suppressions: SuppressionList;
  status: () => Promise<Status>;
  /** The sandbox's capture folder (`posta dev`): its mail gets pages of its own. */
  captured?: string | undefined;
  /** The domains' DKIM keys, to check the captured mail's signatures. */
  directory: Pick<Directory, 'names' | 'keys' | 'allKeys' | 'rotation'>;
  /** Host names a request may give (guard.ts allowedHosts). */
  hosts: Set<string>;
  log: Logger;
}

export type Env = { Bindings: { incoming: IncomingMessage }; Variables: { session: Session } };

/**
 * The session cookie. On https it has the __Host- prefix, which a browser
 * takes only with Secure and from https, for the whole host: a cookie of
 * the same name set over plain http (port 80, say) cannot stand in for it.
 */
const cookieName = (scheme: 'http' | 'https') =>
  scheme === 'https' ? '__Host-posta_session' : 'posta_session';
const LIVE_EVERY_MS = 2000;
const LIVE_FOR_MS = 10 * 60_000;
/** A login form is a few hundred bytes; the other forms are small too. */
const LOGIN_BODY_MAX = 16 * 1024;
const FORM_BODY_MAX = 64 * 1024;
/** What an account's session may open: its queue, its messages, the search, logout. */
const ACCOUNT_PAGES = [/^\/queue$/, /^\/queue\/[^/]+$/, /^\/search$/, /^\/logout$/];

const require = createRequire(import.meta.url);
/** The scripts the pages load, served as the packages ship them (no build step). */
const ASSETS: Record<string, { path: string; type: string }> = {
  'uPlot.iife.min.js': {
    path: require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'uPlot.min.css': {
    path: require.resolve('uplot/dist/uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
  'htmx.min.js': {
    path: require.resolve('htmx.org/dist/htmx.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  'actions.js': {
    path: fileURLToPath(new URL('./actions.js', import.meta.url)),
    type: 'text/javascript; charset=utf-8',
  },
  'live.js': {
    path: fileURLToPath(new URL('./live.js', import.meta.url)),
    type: 'text/javascript; charset=utf-8',
  },
  'charts.js': {
    path: fileURLToPath(new URL('./charts.js', import.meta.url)),
    type: 'text/javascript; charset=utf-8',
  },
};

const HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; frame-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  // not no-referrer: with it a browser sends `Origin: null` on the pages' own forms
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

export function createDashboard(deps: DashboardDeps) {
  const app = new Hono<Env>();
  const limiter = new LoginLimiter();
  const gate = new HashGate({ slots: 1, queue: 8 });
  const scheme = (c: Context<Env>) =>
    'encrypted' in c.env.incoming.socket ? ('https' as const) : ('http' as const);
  const clientIp = (c: Context<Env>) => c.env.incoming.socket.remoteAddress ?? '';
  const view = (c: Context<Env>): pages.View => ({
    csrf: c.get('session').csrf,
    sandbox: deps.captured !== undefined,
    account: c.get('session').account,
  });
  const tooLarge = (c: Context) => c.text('The form is too large.\n', 413);
  /** An account's session sees only its own mail; the admin's sees all. */
  const mine = (c: Context<Env>, id: string) => {
    const account = c.get('session').account;
    return account === null || messageAccount(deps.db, id) === account;
  };

  app.use(async (c, next) => {
    // the pages are read with GET and changed with a form's POST: nothing else
    // is read, so no other method can make the server hold a body
    if (!['GET', 'HEAD', 'POST'].includes(c.req.method)) {
      c.header('allow', 'GET, HEAD, POST');
      return c.text('The dashboard answers GET and POST only.\n', 405);
    }
    const refused = refuse({
      method: c.req.method,
      host: c.req.header('host'),
      origin: c.req.header('origin'),
      fetchSite: c.req.header('sec-fetch-site'),
      scheme: scheme(c),
      hosts: deps.hosts,
    });
    if (refused) return c.text(`${refused.text}\n`, refused.status);
    await next();
    for (const [k, v] of Object.entries(HEADERS))
      if (!c.res.headers.has(k)) c.res.headers.set(k, v);
    // htmx keeps the URL of the page a form's redirect leads to (hx-push-url), but not
    // a POST's own answer (a refused edit's page): that URL shows no page
    if (c.req.method === 'POST' && c.req.header('hx-request') === 'true')
      c.res.headers.set('hx-push-url', 'false');
  });

  app.get('/assets/dashboard.css', (c) => {
    c.header('content-type', 'text/css; charset=utf-8');
    return c.body(pages.CSS);
  });
  app.get('/assets/:file', async (c) => {
    const file = c.req.param('file');
    const asset = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (!asset) return c.notFound();
    c.header('content-type', asset.type);
    // the file names change with nothing but the package version, so a day
    c.header('cache-control', 'max-age=86400');
    return c.body(await readFile(asset.path));
  });

  const clearCookie = (c: Context<Env>) =>
    deleteCookie(c, cookieName(scheme(c)), { path: '/', secure: scheme(c) === 'https' });
  const openSession = (
    c: Context<Env>,
    account: { address: string; passwordHash: string } | null = null,
  ) => {
    const s = createSession(deps.db, Date.now(), account);
    setCookie(c, cookieName(scheme(c)), s.token, {
      httpOnly: true,
      sameSite: 'Strict',
      path: '/',
      secure: scheme(c) === 'https',
      maxAge: SESSION_TTL_MS / 1000,
    });
    return s;
  };

  // whether the login page tells that no admin password is set: on loopback http only
  const passwordShownSet = async (c: Context<Env>) =>
    scheme(c) === 'https' || (await readAdminHash(deps.config.dir)) !== null;

  app.get('/login', async (c) =>
    c.html(pages.loginPage({ passwordSet: await passwordShownSet(c) })),
  );

  app.post('/login', bodyLimit({ maxSize: LOGIN_BODY_MAX, onError: tooLarge }), async (c) => {
    const ip = clientIp(c);
    const body = await c.req.parseBody();
    const password = pages.formField(body, 'password', false);
    const typed = pages.formField(body, 'address');
    // the account as SMTP AUTH names it (smtp/server.ts), so its mail is found
    const parsed = typed ? parseAddress(typed) : null;
    const address = parsed?.ok ? `${parsed.value.local}@${parsed.value.domain}` : null;
    // what the failures count under: text that is no address is one name, not one each
    const login = !typed ? 'admin' : (address ?? '(not an address)');
    const wait = limiter.wait(ip, login);
    if (wait > 0) {
      c.header('retry-after', String(Math.ceil(wait / 1000)));
      const error = `Too many failed logins from ${ip}; try again in ${Math.ceil(wait / 60_000)} minutes.`;
      return c.html(pages.loginPage({ error, passwordSet: true }), 429);
    }
    // the checks wait their turn; a full queue is "busy", not a wrong password
    const check = <T>(fn: () => Promise<T>): Promise<T | 'busy'> =>
      gate.run(fn).catch((err: unknown) => {
        if (err instanceof HashBusy) return 'busy' as const;
        throw err;
      });
    const busy = () => {
      c.header('retry-after', '5');
      const error = 'Too many logins are being checked; try again in a few seconds.';
      return c.html(pages.loginPage({ error, passwordSet: true }), 503);
    };
    if (typed) {
      const account =
        address !== null && password !== ''
          ? await check(() => authenticate(deps.config.dir, address, password))
          : null;
      if (account === 'busy') return busy();
      if (!account) {
        limiter.failed(ip, login);
        deps.log.warn({ ip, account: login }, 'dashboard: an account login failed');
        const error = 'That is not the address and password of an account here.';
        return c.html(pages.loginPage({ error, passwordSet: true }), 401);
      }
      limiter.succeeded(ip, login);
      openSession(c, { address: login, passwordHash: account.hash });
      deps.log.info({ ip, account: login }, 'dashboard: an account logged in');
      return c.redirect('/queue', 303);
    }
    const hash = await readAdminHash(deps.config.dir);
    const ok =
      hash !== null && password !== '' ? await check(() => verifyPassword(password, hash)) : false;
    if (ok === 'busy') return busy();
    if (!ok) {
      limiter.failed(ip, login);
      deps.log.warn({ ip }, 'dashboard: a login failed');
      // on https (the internet, perhaps) the page does not say whether there is one
      const unset = hash === null && scheme(c) === 'http';
      const error = unset ? 'No admin password is set.' : 'That is not the admin password.';
      return c.html(pages.loginPage({ error, passwordSet: !unset }), 401);
    }
    limiter.succeeded(ip, login);
    openSession(c);
    deps.log.info({ ip }, 'dashboard: logged in with the admin password');
    return c.redirect('/', 303);
  });

  app.get('/login/:token', (c) => {
    if (!redeemLink(deps.db, c.req.param('token'))) {
      const error =
        'That login link was used already or has expired; `posta admin link` makes a new one.';
      return c.html(pages.loginPage({ error, passwordSet: true }), 401);
    }
    openSession(c);
    deps.log.info({ ip: clientIp(c) }, 'dashboard: logged in with a one-time link');
    return c.redirect('/', 303);
  });

  // no form of the dashboard is large: a bigger body is refused before it is read
  app.post('*', bodyLimit({ maxSize: FORM_BODY_MAX, onError: tooLarge }));

  // everything below needs a session, and an unsafe request its token
  app.use(async (c, next) => {
    const token = getCookie(c, cookieName(scheme(c)));
    let session = token ? findSession(deps.db, token) : null;
    // an account's session lasts while its password does (sessions.ts)
    if (session?.account != null) {
      const now = await findAccount(deps.config.dir, session.account);
      if (!now || credentialOf(now.hash) !== session.credential) {
        endSession(deps.db, session.token);
        session = null;
      }
    }
    if (!session) {
      if (token) clearCookie(c);
      if (c.req.method === 'GET' || c.req.method === 'HEAD') return c.redirect('/login', 303);
      return c.text('Log in first: the session is missing or has ended.\n', 401);
    }
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const body = await c.req.parseBody();
      const given =
        c.req.header('x-csrf-token') ?? (typeof body.csrf === 'string' ? body.csrf : '');
      if (!sameToken(given, session.csrf)) {
        return c.text(
          "The request lacks this session's token; reload the page and try again.\n",
          403,
        );
      }
    }
    c.set('session', session);
    if (session.account !== null && !ACCOUNT_PAGES.some((p) => p.test(c.req.path))) {
      if (c.req.path === '/') return c.redirect('/queue', 303);
      return c.html(
        pages.notFoundPage('This page is for the admin: an account sees its own mail.', view(c)),
        403,
      );
    }
    await next();
  });

  app.post('/logout', (c) => {
    endSession(deps.db, c.get('session').token);
    clearCookie(c);
    return c.redirect('/login', 303);
  });

  app.get('/', async (c) => {
    const now = Date.now();
    const overview = {
      status: await deps.status(),
      hour: statSeries(deps.db, 60_000, 60, now),
      week: statSeries(deps.db, 3600_000, 168, now),
      destinations: destinations(deps.db, now - 86400_000),
    };
    return c.html(pages.overviewPage(overview, view(c)));
  });

  // the overview's live counters, every LIVE_EVERY_MS; a stream ends after LIVE_FOR_MS and
  // the browser opens another, so none outlives its page for long
  app.get('/live', (c) =>
    streamSSE(c, async (stream) => {
      const end = Date.now() + LIVE_FOR_MS;
      while (!stream.aborted && !stream.closed && Date.now() < end) {
        await stream.writeSSE({
          event: 'counters',
          data: JSON.stringify(pages.liveCounters(await deps.status())),
        });
        await stream.sleep(LIVE_EVERY_MS);
      }
    }),
  );

  app.get('/search', (c) => {
    const field = c.req.query('field') ?? 'any';
    const text = (c.req.query('q') ?? '').trim();
    const q = { field: pages.isSearchField(field) ? field : 'any', text };
    const found = text
      ? searchMessages(deps.db, q.field, text, { accept: (id) => mine(c, id) })
      : null;
    return c.html(pages.searchPage(q, found, view(c)));
  });

  app.get('/queue', (c) => {
    const domain = c.req.query('domain')?.toLowerCase();
    const account = c.get('session').account;
    const all = queueEntries(deps.db).filter(
      (m) => account === null || m.account?.toLowerCase() === account,
    );
    const entries = domain
      ? all.filter((m) => m.recipients.some((r) => r.address.toLowerCase().endsWith(`@${domain}`)))
      : all;
    // the destinations sum everyone's mail: the admin's view only
    const q = { entries, domains: account === null ? queueByDomain(deps.db) : [], domain };
    return c.html(pages.queuePage(q, view(c), c.req.query('done')));
  });

  app.get('/queue/:id', (c) => {
    const id = c.req.param('id');
    const v = view(c);
    const d = mine(c, id) ? messageDetail(deps.db, id) : null;
    if (!d) return c.html(pages.notFoundPage(`No message ${id} is queued or logged.`, v), 404);
    const more = {
      events: listEvents(deps.db, { message: id }),
      calls: webhookLogOfMessage(deps.db, id),
    };
    return c.html(pages.messagePage(d, more, v, c.req.query('done')));
  });

  app.get('/queue/:id/:action', (c) => {
    const { id, action } = c.req.param();
    const v = view(c);
    if (!pages.isAction(action) || !messageDetail(deps.db, id)?.queued) {
      return c.html(pages.notFoundPage(`No message ${id} is queued.`, v), 404);
    }
    return c.html(pages.confirmPage(id, action, v));
  });

  app.post('/queue/:id/:action', (c) => {
    const { id, action } = c.req.param();
    const ip = clientIp(c);
    if (action === 'retry') {
      const n = retryMessage(deps.db, id);
      deps.log.info({ message: id, recipients: n, ip }, 'dashboard: retry now');
      return c.redirect(
        `/queue/${id}?done=${encodeURIComponent(`${n} recipients are due now.`)}`,
        303,
      );
    }
    if (action === 'hold' || action === 'release') {
      const n = action === 'hold' ? holdMessage(deps.db, id) : releaseMessage(deps.db, id);
      deps.log.info({ message: id, recipients: n, ip }, `dashboard: ${action}`);
      const text =
        action === 'hold'
          ? `${n} recipients are held.`
          : `${n} recipients are released and due now.`;
      return c.redirect(`/queue/${id}?done=${encodeURIComponent(text)}`, 303);
    }
    if (action === 'delete') {
      const gone = deleteMessage(deps.db, id);
      if (gone) deps.log.info({ message: id, ip }, 'dashboard: message deleted');
      const text = gone ? `Message ${id} is deleted.` : `No message ${id} was queued.`;
      return c.redirect(`/queue?done=${encodeURIComponent(text)}`, 303);
    }
    return c.html(pages.notFoundPage(`No such action: ${action}.`, view(c)), 404);
  });

  domainRoutes(app, { deps, view, clientIp });

  const domainNames = () => deps.directory.names();

  const suppressionView = async (
    c: Context<Env>,
    o: { flash?: string; error?: string },
    status: 200 | 400 = 200,
  ) => {
    const domains = domainNames();
    const list = await deps.suppressions.list({ domains });
    return c.html(pages.suppressionPage(list, domains, view(c), o), status);
  };

  app.get('/suppression', (c) => suppressionView(c, { flash: c.req.query('done') }));

  app.post('/suppression/:verb?', async (c) => {
    const verb = c.req.param('verb');
    const body = await c.req.parseBody();
    const domain = pages.formField(body, 'domain');
    if (!domainNames().includes(domain))
      return suppressionView(c, { error: `No domain ${domain} is served here.` }, 400);
    const parsed = parseAddress(pages.formField(body, 'address'));
    if (!parsed.ok) return suppressionView(c, { error: `${parsed.error}.` }, 400);
    const address = `${parsed.value.local}@${parsed.value.domain}`;
    let text: string;
    if (verb === 'remove') {
      text = (await deps.suppressions.remove(domain, address))
        ? `${address} is no longer suppressed for ${domain}.`
        : `${address} was not suppressed for ${domain}.`;
    } else if (verb === undefined) {
      const reason = pages.formField(body, 'reason') === 'COMPLAINT' ? 'COMPLAINT' : 'BOUNCE';
      await deps.suppressions.add({ domain, address, reason });
      text = `${address} is suppressed for ${domain}.`;
    } else {
      return c.html(pages.notFoundPage(`No such action: ${verb}.`, view(c)), 404);
    }
    deps.log.info(
      { domain, address, change: verb ?? 'add', ip: clientIp(c) },
      'dashboard: suppression list changed',
    );
    return c.redirect(`/suppression?done=${encodeURIComponent(text)}`, 303);
  });

  const captured = deps.captured;
  if (captured !== undefined) {
    app.get('/captured', async (c) => {
      const q = (c.req.query('q') ?? '').trim();
      return c.html(pages.capturedListPage(await listCaptured(captured, q), q, view(c)));
    });
    const message = async (c: Context<Env>) => {
      const m = await readCaptured(captured, c.req.param('id') ?? '', deps.directory);
      if (!m) c.status(404);
      return m;
    };
    app.get('/captured/:id', async (c) => {
      const m = await message(c);
      if (!m) return c.html(pages.notFoundPage('No such captured message.', view(c)));
      return c.html(pages.capturedPage(m, view(c)));
    });
    // the message's own HTML, in the page's sandboxed iframe: no script, nothing fetched
    app.get('/captured/:id/html', async (c) => {
      const m = await message(c);
      c.header(
        'content-security-policy',
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox",
      );
      c.header('x-frame-options', 'SAMEORIGIN');
      return c.html(m?.html ?? '');
    });
    app.get('/captured/:id/raw', async (c) => {
      const m = await message(c);
      c.header('content-type', 'text/plain; charset=utf-8');
      return c.body(m ? new Uint8Array(m.raw) : 'No such captured message.\n');
    });
    app.get('/captured/:id/attachments/:n', async (c) => {
      const a = (await message(c))?.attachments[Number(c.req.param('n'))];
      if (!a) return c.text('No such attachment.\n', 404);
      // always a download: an attachment is never rendered in the dashboard's origin
      c.header('content-type', 'application/octet-stream');
      c.header(
        'content-disposition',
        `attachment; filename*=UTF-8''${encodeURIComponent(a.filename)}`,
      );
      return c.body(new Uint8Array(a.content));
    });
  }

  app.get('/reports', (c) => {
    const asked = Number(c.req.query('days') ?? REPORT_DAYS);
    const days =
      Number.isInteger(asked) && asked >= 1 && asked <= REPORT_DAYS ? asked : REPORT_DAYS;
    const domain = c.req.query('domain')?.toLowerCase();
    const summary = reportSummary(deps.db, { days, domain });
    return c.html(reportsPage(summary, { days }, view(c)));
  });

  app.get('/keys', (c) => {
    const keys = new KeyStore(deps.db)
      .list()
      .map((k) => ({ ...k, sent: sentLast24Hours(deps.db, k.id) }));
    return c.html(pages.keysPage(keys, view(c)));
  });

  app.get('/webhooks', (c) => {
    const hooks = deps.config.webhooks.map((w) => {
      const state = webhookState(deps.db, w.name);
      return {
        name: w.name,
        url: withoutCredentials(w.url).url,
        format: w.format,
        events: w.events,
        failures: state.failures,
        failingSince: state.failing_since,
        confirmed: state.confirmed === 1,
        calls: webhookLog(deps.db, w.name, 20).reverse(),
      };
    });
    return c.html(pages.webhooksPage(hooks, view(c)));
  });

  app.onError((err, c) => {
    deps.log.error({ err: err.message, path: c.req.path }, 'dashboard: a page failed');
    return c.html(pages.errorPage(err.message), 500);
  });

  app.notFound((c) => c.html(pages.notFoundPage(`Nothing is at ${c.req.path}.`), 404));

  return getRequestListener((req, env) => app.fetch(req, env));
}
