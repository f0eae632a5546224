/**
 * The dashboard's domain routes: the Domains page (DKIM selectors, aliases,
 * accounts), a domain's DNS check on demand, the overview's DNS health
 * (health.ts, cached), and the alias edits, written to the config folder's
 * aliases files as `posta alias` writes them (aliases/aliases.ts). The
 * account edits are accounts-page.ts's.
 */
import type { Context, Hono } from 'hono';
import { rotationLine } from '../../dkim/rotation.ts';
import { PostaError } from '../../errors.ts';
import { aliasesFile } from '../../config/paths.ts';
import {
  checkAlias,
  editAliases,
  parseAliasLocal,
  parseTarget,
  readAliases,
} from '../../aliases/aliases.ts';
import { checkDomain } from './domain-check.ts';
import { HealthCache } from './health.ts';
import { accountRoutes, domainAccounts } from './accounts-page.ts';
import { domainCheckPage, domainsPage, healthItems, healthPage } from './domains-page.ts';
import { formField, notFoundPage, type View } from './pages.ts';
import type { DashboardDeps, Env } from './dashboard.ts';

export function domainRoutes(
  app: Hono<Env>,
  o: {
    deps: DashboardDeps;
    view: (c: Context<Env>) => View;
    clientIp: (c: Context<Env>) => string;
  },
): void {
  const { deps, view, clientIp } = o;
  const served = (domain: string) => deps.directory.names().includes(domain);
  const rotationOf = (domain: string): string | undefined => {
    const r = deps.directory.rotation(domain);
    return r ? rotationLine(r.plan, r.switchedAt, new Date()) : undefined;
  };
  const domainViews = async () =>
    Promise.all(
      deps.directory.names().map(async (domain) => ({
        domain,
        selectors: deps.directory.keys(domain).map((k) => k.selector),
        rotation: rotationOf(domain),
        aliases: (await readAliases(aliasesFile(deps.config.dir, domain), domain)).aliases(),
        accounts: await domainAccounts(deps.config.dir, domain),
      })),
    );
  const failed = async (c: Context<Env>, error: string, status: 400 | 404) =>
    c.html(domainsPage(await domainViews(), view(c), { error }), status);
  const health = new HealthCache({
    // the domain's DNS: the server's own checks are on the domain check page
    check: async (domain) =>
      (await checkDomain(deps.config, deps.resolve, domain, { server: false })).report,
  });

  app.get('/domains', async (c) =>
    c.html(domainsPage(await domainViews(), view(c), { flash: c.req.query('done') })),
  );

  // the overview's DNS health: a fragment for htmx, a page without script
  app.get('/domains/health', async (c) => {
    const list = await health.of(deps.directory.names());
    return c.html(
      c.req.header('hx-request') === 'true' ? healthItems(list) : healthPage(list, view(c)),
    );
  });

  app.get('/domains/:domain/check', async (c) => {
    const domain = c.req.param('domain');
    if (!served(domain)) {
      return c.html(notFoundPage(`No domain ${domain} is served here.`, view(c)), 404);
    }
    const { zone, report } = await checkDomain(deps.config, deps.resolve, domain);
    return c.html(domainCheckPage(domain, zone, report, view(c)));
  });

  app.post('/domains/:domain/aliases/:verb?', async (c) => {
    const { domain, verb } = c.req.param();
    if (!served(domain) || (verb !== undefined && verb !== 'remove')) {
      return c.html(notFoundPage(`No domain ${domain} is served here.`, view(c)), 404);
    }
    const body = await c.req.parseBody();
    const file = aliasesFile(deps.config.dir, domain);
    try {
      const local = parseAliasLocal(formField(body, 'local'));
      let text: string;
      if (verb === 'remove') {
        if (!(await editAliases(file, domain, (f) => f.remove(local)))) {
          throw new PostaError(`There is no alias ${local}@${domain}.`);
        }
        text = `Removed ${local}@${domain}.`;
      } else {
        const targets = formField(body, 'targets')
          .split(',')
          .filter((t) => t.trim())
          .map((t) => parseTarget(domain, t));
        if (targets.length === 0) throw new PostaError('Give at least one address to forward to.');
        checkAlias({ local, targets }, domain);
        await editAliases(file, domain, (f) => f.add(local, targets));
        text = `${local}@${domain}: ${targets.join(', ')}`;
      }
      deps.log.info({ domain, change: text, ip: clientIp(c) }, 'dashboard: aliases changed');
      return c.redirect(`/domains?done=${encodeURIComponent(text)}`, 303);
    } catch (err) {
      if (!(err instanceof PostaError)) throw err;
      return failed(c, err.message, 400);
    }
  });

  accountRoutes(app, { dir: deps.config.dir, log: deps.log, served, clientIp, failed });
}
