/**
 * The dashboard's Domains pages: each domain's DKIM selectors, aliases and
 * accounts (accounts-page.ts), with forms that edit them; the DNS check of
 * one domain (doctor's checks beside the records `posta dns` prints); and the
 * overview's one-line DNS health of each domain (health.ts), which htmx loads
 * into the overview's placeholder (pages.ts). Rendered with
 * hono/html like pages.ts, whose layout and form helpers they use.
 */
import { html } from 'hono/html';
import type { Alias } from '../../aliases/aliases.ts';
import type { Report } from '../../doctor/report.ts';
import { accountsSection, type AccountView } from './accounts-page.ts';
import type { Health } from './health.ts';
import {
  hidden,
  hxPost,
  layout,
  problem,
  removeButton,
  when,
  type Html,
  type View,
} from './pages.ts';

export interface DomainView {
  domain: string;
  /** The selectors that sign. */
  selectors: string[];
  /** Where a DKIM key rotation is, when one is under way. */
  rotation?: string | undefined;
  aliases: Alias[];
  /** The domain's accounts (domains/DOMAIN/users), without their hashes. */
  accounts: AccountView[];
}

export function domainsPage(
  domains: DomainView[],
  v: View,
  o: { flash?: string; error?: string } = {},
): Html {
  return layout(
    'Domains',
    html`${problem(o.error)}
    ${domains.map(
      (d) =>
        html`<section aria-labelledby="d-${d.domain}">
          <h2 id="d-${d.domain}">${d.domain}</h2>
          <p>
            DKIM selectors: ${d.selectors.join(', ') || 'none'}.
            <code>posta dns ${d.domain}</code> prints the records to publish,
            <code>posta doctor ${d.domain}</code> checks them.
          </p>
          ${
            d.rotation
              ? html`<p class="rotation">
                  DKIM key rotation: ${d.rotation}. <code>posta dkim status ${d.domain}</code> shows
                  each key.
                </p>`
              : ''
          }
          <p>
            <a class="button" href="/domains/${d.domain}/check">Check the DNS of ${d.domain}</a>
          </p>
          <h3>Aliases</h3>
          <p class="hint">
            Written to domains/${d.domain}/aliases as <code>posta alias</code> writes it;
            hand-written comments stay.
          </p>
          ${
            d.aliases.length === 0
              ? html`<p>No aliases.</p>`
              : html`<table class="aliases">
                  <thead>
                    <tr>
                      <th scope="col">Alias</th>
                      <th scope="col">Forwards to</th>
                      <th scope="col"><span class="sr">Action</span></th>
                    </tr>
                  </thead>
                  <tbody>
                    ${d.aliases.map(
                      (a) =>
                        html`<tr>
                          <td>${a.local}@${d.domain}</td>
                          <td>${a.targets.join(', ')}</td>
                          <td>
                            ${removeButton(
                              `/domains/${d.domain}/aliases/remove`,
                              { local: a.local },
                              `Remove ${a.local}@${d.domain}`,
                              v,
                            )}
                          </td>
                        </tr>`,
                    )}
                  </tbody>
                </table>`
          }
          <form
            method="post"
            action="/domains/${d.domain}/aliases"
            class="row"
            ${hxPost(`/domains/${d.domain}/aliases`)}
          >
            ${hidden(v.csrf)}
            <label for="local-${d.domain}">Alias (local part, or * for every other address)</label>
            <input id="local-${d.domain}" name="local" required />
            <label for="targets-${d.domain}">Forwards to (addresses, separated by commas)</label>
            <input id="targets-${d.domain}" name="targets" required />
            <button type="submit">Add the alias</button>
          </form>
          ${accountsSection(d.domain, d.accounts, v)}
        </section>`,
    )}`,
    { v, flash: o.flash },
  );
}

const MARK = { pass: '✓', fail: '✗', warn: '!' } as const;

export function domainCheckPage(domain: string, zone: string, report: Report, v: View): Html {
  return layout(
    `DNS of ${domain}`,
    html`<p>
        ${report.ok ? 'Every check passed or only warns.' : html`<strong>A check failed</strong>: see its fix below.`}
      </p>
      <table id="checks">
        <thead>
          <tr>
            <th scope="col">Check</th>
            <th scope="col">Result</th>
            <th scope="col">Found</th>
            <th scope="col">What to do</th>
          </tr>
        </thead>
        <tbody>
          ${report.checks.map(
            (c) =>
              html`<tr class="${c.status === 'fail' ? 'permanent' : ''}">
                <th scope="row">${c.title}</th>
                <td><span aria-hidden="true">${MARK[c.status]}</span> ${c.status}</td>
                <td>${c.detail}</td>
                <td>${c.fix ?? ''}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <h2>Records to publish</h2>
      <p class="hint">As <code>posta dns ${domain}</code> prints them, zone-file lines.</p>
      <pre id="zone">${zone}</pre>
      <p><a href="/domains">Back to the domains</a></p>`,
    { v },
  );
}

const plural = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** One domain's health in a few words: "ok", "2 warnings", "1 failure, 2 warnings". */
export function healthWords(h: Health): string {
  if (h.error !== undefined) return `not checked: ${h.error}`;
  const parts = [
    ...(h.failures ? [plural(h.failures, 'failure')] : []),
    ...(h.warnings ? [plural(h.warnings, 'warning')] : []),
  ];
  return parts.length ? parts.join(', ') : 'ok';
}

/** The overview's DNS health: each domain's line (what htmx swaps into its placeholder). */
export function healthItems(list: Health[]): Html {
  return html`<ul>
      ${list.map(
        (h) =>
          html`<li class="${h.failures ? 'error' : ''}">
            ${h.domain}: ${healthWords(h)} (<a href="/domains/${h.domain}/check"
              >the checks of ${h.domain}</a
            >)
          </li>`,
      )}
    </ul>
    <p class="hint">
      ${list.length ? html`Checked ${when(Math.min(...list.map((h) => h.at)))}; ` : ''}doctor's
      checks of each domain's DNS, run again after five minutes when a page asks (the server's own,
      such as its certificate, are on each domain's check page).
    </p>`;
}

/** The same list on a page of its own, for a browser without script. */
export function healthPage(list: Health[], v: View): Html {
  return layout(
    'DNS health',
    html`<div id="dns-health">${healthItems(list)}</div>
      <p><a href="/">Back to the overview</a></p>`,
    {
      v,
    },
  );
}
