/**
 * The dashboard's pages, rendered on the server with hono/html (its tagged
 * template escapes every value; Node's type stripping runs no JSX). Every
 * page works without script: forms post with the session's token in a hidden
 * field and are answered with a redirect, and every queue action has a
 * confirmation page, so the pages work with a keyboard, a screen reader and a
 * phone alike. With script, htmx (pinned in package.json) sends the same
 * forms and links itself and swaps in the `<main>` of the page they lead to
 * (`hxPost`, `hxGet`), without reloading the page; actions.js shows a
 * refused request (401, 403, ...) in the page.
 */
import { html } from 'hono/html';
import type { HtmlEscapedString } from 'hono/utils/html';
import type { Status } from '../../status/control.ts';
import { warmupLine } from '../../warmup/schedule.ts';
import type {
  DestinationQueue,
  Found,
  MessageDetail,
  QueueEntry,
  SearchField,
} from '../../queue/inspect.ts';
import type { StoredEvent } from '../../events/events.ts';
import {
  COMPLAINT_LIMIT,
  COMPLAINT_TARGET,
  percent,
  WINDOW_DAYS,
} from '../../events/complaint-rate.ts';
import { STAT_OUTCOMES, type Destination, type Series } from '../../stats/stats.ts';
import type { Suppressed } from '../../suppression/suppression.ts';
import type { CapturedMessage, CapturedSummary } from './captured.ts';
import type { ApiKey } from '../../keys/keys.ts';
import type { LogEntry } from '../../events/webhooks.ts';

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export const when = (ms: number) =>
  new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');

function ago(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** What every page of a session knows: its token, and whether this is the sandbox. */
export interface View {
  csrf: string;
  sandbox: boolean;
  /** An account's session: its own mail only, no actions; null: the admin. */
  account: string | null;
}

/** A form field as posted, or '' when it is missing or a file; `trim` for names and addresses, not passwords. */
export function formField(body: Record<string, unknown>, name: string, trim = true): string {
  const v = body[name];
  return typeof v !== 'string' ? '' : trim ? v.trim() : v;
}

/** The session's token, in each form that changes something (guard.ts); htmx sends it too. */
export const hidden = (csrf: string) => html`<input type="hidden" name="csrf" value="${csrf}" />`;

/**
 * The attributes that let htmx send a form to `action` and swap in the
 * `<main>` of the page the server redirects to (its URL goes to the history,
 * as a plain form's redirect would); without script the form posts as it is.
 */
export const hxPost = (action: string) =>
  html`hx-post="${action}" hx-target="main" hx-select="main" hx-swap="outerHTML show:window:top"
  hx-push-url="true"`;

/** The same for a link: its page's `<main>` is swapped in. */
export const hxGet = (href: string) =>
  html`hx-get="${href}" hx-target="main" hx-select="main" hx-swap="outerHTML show:window:top"
  hx-push-url="true"`;

/**
 * htmx's settings (https://htmx.org/reference/#config): no inline style (the
 * CSP allows none, and the test checks that the browser blocked none), no eval, no history kept in localStorage (the pages hold
 * the session's token); a 400 or 404 page is swapped in (it says what was
 * wrong), any other error answer goes to actions.js.
 */
const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  // settling copies `style` attributes, which the CSP refuses; there are none to keep
  attributesToSettle: ['class', 'width', 'height'],
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
  historyRestoreAsHxRequest: false,
  responseHandling: [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '40[04]', swap: true },
    { code: '[45]..', swap: false, error: true },
  ],
});

/** A Remove button of a list row: posts `fields` to `action`; `label` names the row for a screen reader. */
export function removeButton(
  action: string,
  fields: Record<string, string>,
  label: string,
  v: View,
): Html {
  return html`<form method="post" action="${action}" ${hxPost(action)}>
    ${hidden(v.csrf)}
    ${Object.entries(fields).map(([k, x]) => html`<input type="hidden" name="${k}" value="${x}" />`)}
    <button type="submit" class="danger" aria-label="${label}">Remove</button>
  </form>`;
}

/** The links a session may follow: an account's own mail, or everything for the admin. */
function nav(v: View): Html {
  const links =
    v.account !== null
      ? html`<a href="/queue">Queue</a> <a href="/search">Search</a> <span>${v.account}</span>`
      : html`<a href="/">Overview</a> <a href="/queue">Queue</a> <a href="/search">Search</a>
          <a href="/domains">Domains</a> <a href="/suppression">Suppression</a>
          <a href="/reports">Reports</a>
          <a href="/keys">API keys</a>
          <a href="/webhooks">Webhooks</a>
          ${v.sandbox ? html`<a href="/captured">Captured</a>` : ''}`;
  return html`${links}
    <form method="post" action="/logout" class="inline">
      ${hidden(v.csrf)}<button type="submit">Log out</button>
    </form>`;
}

export function layout(
  title: string,
  body: Html,
  o: { v?: View; flash?: string; charts?: boolean } = {},
): Html {
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>${title} · posta</title>
        <link rel="stylesheet" href="/assets/dashboard.css" />
        <meta name="htmx-config" content="${HTMX_CONFIG}" />
        <script src="/assets/htmx.min.js" defer></script>
        <script src="/assets/actions.js" defer></script>
        ${
          o.charts
            ? html`<link rel="stylesheet" href="/assets/uPlot.min.css" />
                <script src="/assets/uPlot.iife.min.js" defer></script>
                <script src="/assets/charts.js" defer></script>
                <script src="/assets/live.js" defer></script>`
            : ''
        }
      </head>
      <body>
        <header>
          <nav aria-label="Main">
            <a href="/" class="brand">posta</a>
            ${o.v ? nav(o.v) : ''}
          </nav>
        </header>
        <main>
          ${o.flash ? html`<p role="status" class="flash">${o.flash}</p>` : ''}
          <h1>${title}</h1>
          ${body}
        </main>
      </body>
    </html>`;
}

export function loginPage(o: { error?: string; passwordSet: boolean }): Html {
  return layout(
    'Log in',
    html`${o.error ? html`<p role="alert" class="error">${o.error}</p>` : ''}
      ${
        o.passwordSet
          ? ''
          : html`<p>
              No admin password is set. On the server, run <code>posta admin password</code>, or
              <code>posta admin link</code> for a one-time login link.
            </p>`
      }
      <form method="post" action="/login">
        <label for="address">Account address (empty for the admin)</label>
        <input id="address" name="address" type="email" autocomplete="username" autofocus />
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete="current-password"
          required
        />
        <button type="submit">Log in</button>
      </form>
      <p class="hint">
        An account sees the mail it sent. A lost admin password:
        <code>posta admin link</code> on the server prints a link that logs in once.
      </p>`,
  );
}

const OUTCOMES = ['delivered', 'transient', 'permanent', 'expired'] as const;

export interface Overview {
  status: Status;
  /** Per minute over the last hour, per hour over the last 7 days. */
  hour: Series;
  week: Series;
  /** Outcomes by destination class over the last 24 hours. */
  destinations: Destination[];
}

function chart(id: string, title: string, s: Series): Html {
  const total = (o: (typeof STAT_OUTCOMES)[number]) => s.counts[o].reduce((a, b) => a + b, 0);
  const label = `${title}: ${STAT_OUTCOMES.map((o) => `${total(o)} ${o}`).join(', ')}`;
  return html`<figure>
    <figcaption>${title}</figcaption>
    <div
      class="chart"
      id="${id}"
      role="img"
      aria-label="${label}"
      data-series="${JSON.stringify(s)}"
    ></div>
    <p class="totals">
      ${STAT_OUTCOMES.map((o) => html`<span class="${o}">${total(o)} ${o}</span> `)}
    </p>
  </figure>`;
}

const oldest = (s: Status) => (s.queue.messages ? ago(s.queue.oldestSeconds) : '—');

/** The overview's figures that /live keeps current, by element id. */
export function liveCounters(s: Status): Record<string, string | number> {
  return {
    'queue-messages': s.queue.messages,
    'queue-queued': s.queue.queued,
    'queue-deferred': s.queue.deferred,
    'queue-oldest': oldest(s),
    ...Object.fromEntries(OUTCOMES.map((o) => [`last-hour-${o}`, s.lastHour[o] ?? 0])),
  };
}

const rate = (n: number, of: number) => (of ? `${((100 * n) / of).toFixed(1)}%` : '—');

/** Each sending domain's complaint rate, the warning past Gmail's line first. */
function complaintsSection(s: Status): Html {
  return html`<section aria-labelledby="complaints-h">
    <h2 id="complaints-h">Complaints, last ${WINDOW_DAYS} days</h2>
    ${s.complaints
      .filter((c) => c.over)
      .map(
        (c) =>
          html`<p class="error" role="alert">
            <strong
              >${c.domain}: ${percent(c.rate)} of its recipients reported its mail as spam.</strong
            >
            Gmail and Yahoo start refusing bulk mail at ${percent(COMPLAINT_LIMIT)} (keep it below
            ${percent(COMPLAINT_TARGET)}): send only to people who asked for the mail, and make
            unsubscribing easy.
          </p>`,
      )}
    ${
      s.complaints.length
        ? html`<table id="complaints">
            <thead>
              <tr>
                <th scope="col">Sending domain</th>
                <th scope="col">Delivered</th>
                <th scope="col">Complaints</th>
                <th scope="col">Complaint rate</th>
              </tr>
            </thead>
            <tbody>
              ${s.complaints.map(
                (c) =>
                  html`<tr>
                    <th scope="row">${c.domain}</th>
                    <td>${c.delivered}</td>
                    <td>${c.complaints}</td>
                    <td>${percent(c.rate)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p>Nothing delivered in that time.</p>`
    }
  </section>`;
}

export function overviewPage(o: Overview, v: View): Html {
  const s = o.status;
  const counts = (r: Record<string, number>, live?: string) =>
    OUTCOMES.map((o) => html`<td ${live ? html`id="${live}-${o}"` : ''}>${r[o] ?? 0}</td>`);
  return layout(
    'Overview',
    html`<section aria-labelledby="charts-h">
        <h2 id="charts-h">Mail</h2>
        ${chart('chart-hour', 'Per minute, last hour', o.hour)}
        ${chart('chart-week', 'Per hour, last 7 days', o.week)}
      </section>
      <section aria-labelledby="dest-h">
        <h2 id="dest-h">Destinations, last 24 hours</h2>
        <table id="destinations">
          <thead>
            <tr>
              <th scope="col">Destination</th>
              <th scope="col">Delivered</th>
              <th scope="col">Deferred</th>
              <th scope="col">Bounced</th>
              <th scope="col">Deferral rate</th>
              <th scope="col">Bounce rate</th>
            </tr>
          </thead>
          <tbody>
            ${o.destinations.map((d) => {
              const all = d.delivered + d.deferred + d.bounced;
              return html`<tr>
                <th scope="row">${d.class}</th>
                <td>${d.delivered}</td>
                <td>${d.deferred}</td>
                <td>${d.bounced}</td>
                <td>${rate(d.deferred, all)}</td>
                <td>${rate(d.bounced, all)}</td>
              </tr>`;
            })}
          </tbody>
        </table>
      </section>
      ${complaintsSection(s)}
      <section aria-labelledby="queue-h">
        <h2 id="queue-h">Queue</h2>
        <dl class="figures">
          <div>
            <dt>Messages</dt>
            <dd id="queue-messages">${s.queue.messages}</dd>
          </div>
          <div>
            <dt>Recipients not yet tried</dt>
            <dd id="queue-queued">${s.queue.queued}</dd>
          </div>
          <div>
            <dt>Recipients deferred</dt>
            <dd id="queue-deferred">${s.queue.deferred}</dd>
          </div>
          <div>
            <dt>Oldest</dt>
            <dd id="queue-oldest">${oldest(s)}</dd>
          </div>
        </dl>
        <p><a href="/queue">See the queue</a></p>
      </section>
      <section aria-labelledby="deliveries-h">
        <h2 id="deliveries-h">Delivery attempts</h2>
        <table>
          <thead>
            <tr>
              <th scope="col">Period</th>
              ${OUTCOMES.map((o) => html`<th scope="col">${o}</th>`)}
            </tr>
          </thead>
          <tbody>
            <tr id="last-hour">
              <th scope="row">Last hour</th>
              ${counts(s.lastHour, 'last-hour')}
            </tr>
            <tr id="last-day">
              <th scope="row">Last 24 hours</th>
              ${counts(s.lastDay)}
            </tr>
          </tbody>
        </table>
      </section>
      ${
        s.warmup.length
          ? html`<section aria-labelledby="warmup-h">
              <h2 id="warmup-h">Warm-up</h2>
              <ul id="warmup">
                ${s.warmup.map((w) => html`<li>${w.sender}: ${warmupLine(w)}</li>`)}
              </ul>
            </section>`
          : ''
      }
      <section aria-labelledby="cert-h">
        <h2 id="cert-h">Certificate</h2>
        <p>
          ${s.certificate.names.join(', ')}:
          ${
            s.certificate.temporary
              ? 'a temporary self-signed certificate, until ACME gets the first one'
              : `valid until ${s.certificate.notAfter} (${s.certificate.daysLeft} days)`
          }${s.certificate.failures ? html`; <strong>${s.certificate.failures} renewals failed</strong>: ${s.certificate.lastError ?? ''}` : ''}
        </p>
      </section>
      <section aria-labelledby="dkim-h">
        <h2 id="dkim-h">Domains</h2>
        <ul>
          ${Object.entries(s.dkim).map(([d, sel]) => html`<li>${d}: DKIM selectors ${sel.join(', ') || 'none'}</li>`)}
        </ul>
      </section>
      <section aria-labelledby="health-h">
        <h2 id="health-h">DNS health</h2>
        ${healthPlaceholder()}
      </section>
      <section aria-labelledby="server-h">
        <h2 id="server-h">Server</h2>
        <p>
          posta ${s.version}, up ${ago(s.uptimeSeconds)}; listening on
          ${s.listeners.map((l) => `${l.kind} ${l.address}`).join(', ')}.
        </p>
        ${
          s.errors.length
            ? html`<h3>Recent errors</h3>
                <ul>
                  ${s.errors.map((e) => html`<li><time>${e.time}</time> ${e.msg}</li>`)}
                </ul>`
            : ''
        }
      </section>`,
    { v, charts: true },
  );
}

/**
 * The overview's DNS health: htmx loads each domain's line (domains-page.ts
 * healthItems) into it when the page opens, and a screen reader reads them
 * out (the live region stays); without script, a link to the same list.
 */
function healthPlaceholder(): Html {
  return html`<div
    id="dns-health"
    hx-get="/domains/health"
    hx-trigger="load"
    hx-swap="innerHTML"
    aria-live="polite"
  >
    <p><a href="/domains/health">Check the DNS of each domain</a></p>
  </div>`;
}

/** The messages the queue page lists at most. */
const QUEUE_ROWS = 500;

export function queuePage(
  q: { entries: QueueEntry[]; domains: DestinationQueue[]; domain?: string | undefined },
  v: View,
  flash?: string,
): Html {
  const now = Date.now();
  const entries = q.entries.slice(0, QUEUE_ROWS);
  const shown =
    entries.length < q.entries.length
      ? `the first ${entries.length} of ${q.entries.length}`
      : `${entries.length}`;
  return layout(
    q.domain ? `Queue to ${q.domain}` : 'Queue',
    q.entries.length === 0
      ? html`<p>
          ${q.domain ? `No message waits for ${q.domain}.` : 'The queue is empty: every message was delivered or has bounced.'}
        </p>`
      : html`${
            q.domain
              ? html`<p><a href="/queue">Every destination</a></p>`
              : q.domains.length === 0
                ? ''
                : html`<table id="destinations-queue">
                    <caption>
                      By destination
                    </caption>
                    <thead>
                      <tr>
                        <th scope="col">Domain</th>
                        <th scope="col">Recipients</th>
                        <th scope="col">Deferred</th>
                        <th scope="col">Held</th>
                        <th scope="col">Oldest</th>
                        <th scope="col">A recent reply</th>
                      </tr>
                    </thead>
                    <tbody>
                      ${q.domains.map(
                        (d) =>
                          html`<tr>
                            <th scope="row">
                              <a href="/queue?domain=${encodeURIComponent(d.domain)}"
                                >${d.domain}</a
                              >
                            </th>
                            <td>${d.recipients}</td>
                            <td>${d.deferred}</td>
                            <td>${d.held}</td>
                            <td>${ago((now - d.oldest) / 1000)}</td>
                            <td>${d.lastReply ?? ''}</td>
                          </tr>`,
                      )}
                    </tbody>
                  </table>`
          }
          <table id="messages">
            <caption>
              ${shown} message${q.entries.length === 1 ? '' : 's'} waiting
            </caption>
            <thead>
              <tr>
                <th scope="col">Queue id</th>
                <th scope="col">From</th>
                <th scope="col">Recipients</th>
                <th scope="col">Attempts</th>
                <th scope="col">Next attempt</th>
                <th scope="col">Last reply</th>
              </tr>
            </thead>
            <tbody>
              ${entries.map((m) => {
                const next = Math.min(...m.recipients.map((r) => r.nextAttempt));
                const attempts = Math.max(0, ...m.recipients.map((r) => r.attempts));
                const reply = m.recipients.find((r) => r.lastReply)?.lastReply ?? '';
                return html`<tr>
                  <td><a href="/queue/${m.id}">${m.id}</a></td>
                  <td>${m.sender || '<>'}</td>
                  <td>${m.recipients.map((r) => r.address).join(', ')}</td>
                  <td>${attempts}</td>
                  <td>
                    ${
                      m.recipients.every((r) => r.held)
                        ? 'held'
                        : next <= now
                          ? 'due now'
                          : `in ${ago((next - now) / 1000)}`
                    }
                  </td>
                  <td>${reply}</td>
                </tr>`;
              })}
            </tbody>
          </table>`,
    { v, flash },
  );
}

export function messagePage(
  d: MessageDetail,
  more: { events: StoredEvent[]; calls: LogEntry[] },
  v: View,
  flash?: string,
): Html {
  const q = d.queued;
  return layout(
    `Message ${d.id}`,
    html`<dl class="envelope">
        <div>
          <dt>Subject</dt>
          <dd>${d.subject ?? '(none)'}</dd>
        </div>
        <div>
          <dt>From</dt>
          <dd>${d.from.join(', ') || '(none)'}</dd>
        </div>
        ${
          q
            ? html`<div>
                  <dt>Envelope sender</dt>
                  <dd>${q.sender || '<>'}</dd>
                </div>
                <div>
                  <dt>Received</dt>
                  <dd>${when(q.createdAt)} from ${q.clientIp} (${q.source})</dd>
                </div>
                <div>
                  <dt>Size</dt>
                  <dd>${q.size} bytes</dd>
                </div>`
            : ''
        }
        <div>
          <dt>State</dt>
          <dd id="state">
            ${
              q
                ? q.recipients.every((r) => r.held)
                  ? 'held'
                  : 'queued'
                : 'done: no recipient left to deliver'
            }
          </dd>
        </div>
      </dl>
      ${
        q
          ? html`<h2>Recipients waiting</h2>
              <table>
                <thead>
                  <tr>
                    <th scope="col">Recipient</th>
                    <th scope="col">Attempts</th>
                    <th scope="col">Next attempt</th>
                    <th scope="col">Last reply</th>
                  </tr>
                </thead>
                <tbody>
                  ${q.recipients.map(
                    (r) =>
                      html`<tr>
                        <td>${r.address}</td>
                        <td>${r.attempts}</td>
                        <td>${r.held ? 'held' : when(r.nextAttempt)}</td>
                        <td>${r.lastReply ?? ''}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>
              ${
                v.account !== null
                  ? ''
                  : html`<p class="actions">
                      ${
                        q.recipients.some((r) => !r.held)
                          ? html`${actionLink(d.id, 'retry', 'Retry now')}
                            ${actionLink(d.id, 'hold', 'Hold')}`
                          : ''
                      }
                      ${q.recipients.some((r) => r.held) ? actionLink(d.id, 'release', 'Release') : ''}
                      ${actionLink(d.id, 'delete', 'Delete', 'danger')}
                    </p>`
              }`
          : ''
      }
      <h2>Timeline</h2>
      ${
        d.attempts.length === 0
          ? html`<p>No delivery attempt yet.</p>`
          : html`<table id="attempts">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">Recipient</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">MX</th>
                  <th scope="col">IP</th>
                  <th scope="col">TLS</th>
                  <th scope="col">Reply</th>
                  <th scope="col">Duration</th>
                </tr>
              </thead>
              <tbody>
                ${d.attempts.map(
                  (a) =>
                    html`<tr class="${a.outcome}">
                      <td>${when(a.at)}</td>
                      <td>${a.recipient}</td>
                      <td>${a.outcome}</td>
                      <td>${a.mx ?? ''}</td>
                      <td>${a.ip ?? ''}</td>
                      <td>
                        ${a.tls ? `${a.tls}${a.tlsVerified ? ', verified' : ', not verified'}` : 'none'}
                      </td>
                      <td>${a.reply}</td>
                      <td>${a.durationMs} ms</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
      <h2>Events</h2>
      ${
        more.events.length === 0
          ? html`<p>No events (events are kept for the mail of accounts and access keys).</p>`
          : html`<ul id="events">
              ${more.events.map((e) => html`<li><time>${when(e.at)}</time> ${e.type}: ${e.recipients.join(', ')}</li>`)}
            </ul>`
      }
      ${
        more.calls.length === 0
          ? ''
          : html`<h2>Webhook calls</h2>
              <table id="message-calls">
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Endpoint</th>
                    <th scope="col">Event</th>
                    <th scope="col">Status</th>
                    <th scope="col">Error</th>
                  </tr>
                </thead>
                <tbody>
                  ${more.calls.map(
                    (c) =>
                      html`<tr>
                        <td>${when(c.at)}</td>
                        <td>${c.endpoint}</td>
                        <td>${c.event ?? ''}</td>
                        <td>${c.status ?? ''}</td>
                        <td>${c.error ?? ''}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
      }
      <h2>Header fields</h2>
      ${
        d.headers.length === 0
          ? html`<p>Not kept: the message has left the queue and was not an account's.</p>`
          : html`<table id="headers">
              <tbody>
                ${d.headers.map(
                  (h) =>
                    html`<tr>
                      <th scope="row">${h.name}</th>
                      <td>${h.value}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
    { v, flash },
  );
}

/** A queue action's link: to its confirmation page (swapped in by htmx). */
function actionLink(id: string, action: Action, text: string, cls = ''): Html {
  const href = `/queue/${id}/${action}`;
  return html`<a class="${cls ? `button ${cls}` : 'button'}" href="${href}" ${hxGet(href)}
    >${text}</a
  >`;
}

const ACTIONS = {
  retry: {
    title: 'Retry now',
    text: 'Try every waiting recipient of this message now?',
    button: 'Retry now',
  },
  hold: {
    title: 'Hold',
    text: 'Hold this message? None of its recipients is tried until you release it.',
    button: 'Hold the message',
  },
  release: {
    title: 'Release',
    text: 'Release this message? Its held recipients are tried now.',
    button: 'Release the message',
  },
  delete: {
    title: 'Delete',
    text: 'Delete this message and its waiting recipients? It will not be delivered, and no bounce is sent.',
    button: 'Delete the message',
  },
} as const;

export type Action = keyof typeof ACTIONS;
export const isAction = (a: string): a is Action => a in ACTIONS;

const FIELDS: [SearchField, string][] = [
  ['any', 'Anything'],
  ['to', 'Recipient'],
  ['from', 'Sender'],
  ['subject', 'Subject'],
  ['msgid', 'Message-ID'],
  ['id', 'Queue id'],
];

export function searchPage(
  q: { field: SearchField; text: string },
  found: Found[] | null,
  v: View,
): Html {
  return layout(
    'Search',
    html`<form method="get" action="/search" role="search" class="search">
        <label for="field">In</label>
        <select id="field" name="field">
          ${FIELDS.map(
            ([f, label]) =>
              html`<option value="${f}" ${f === q.field ? 'selected' : ''}>${label}</option>`,
          )}
        </select>
        <label for="q">Text</label>
        <input id="q" name="q" type="search" value="${q.text}" required />
        <button type="submit">Search</button>
      </form>
      ${
        found === null
          ? html`<p class="hint">
              The queue, the delivery log and the events of the last 30 days.
            </p>`
          : found.length === 0
            ? html`<p>No message matches.</p>`
            : html`<table id="results">
                <caption>
                  ${found.length} message${found.length === 1 ? '' : 's'}, newest first
                </caption>
                <thead>
                  <tr>
                    <th scope="col">Queue id</th>
                    <th scope="col">Time</th>
                    <th scope="col">From</th>
                    <th scope="col">To</th>
                    <th scope="col">Subject</th>
                    <th scope="col">State</th>
                  </tr>
                </thead>
                <tbody>
                  ${found.map(
                    (m) =>
                      html`<tr>
                        <td><a href="/queue/${m.id}">${m.id}</a></td>
                        <td>${when(m.at)}</td>
                        <td>${m.sender ?? ''}</td>
                        <td>${m.recipients.join(', ')}</td>
                        <td>${m.subject ?? ''}</td>
                        <td>${m.state}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>`
      }`,
    { v },
  );
}

export function problem(error: string | undefined): Html | string {
  return error ? html`<p role="alert" class="error">${error}</p>` : '';
}

export function suppressionPage(
  list: Suppressed[],
  domains: string[],
  v: View,
  o: { flash?: string; error?: string } = {},
): Html {
  return layout(
    'Suppression list',
    html`${problem(o.error)}
      <p class="hint">
        Mail from a domain to an address on its list is accepted but never sent: the recipient fails
        at once. A hard bounce adds the address by itself.
      </p>
      <form method="post" action="/suppression" class="row" ${hxPost('/suppression')}>
        ${hidden(v.csrf)}
        <label for="s-domain">Domain</label>
        <select id="s-domain" name="domain">
          ${domains.map((d) => html`<option value="${d}">${d}</option>`)}
        </select>
        <label for="s-address">Address</label>
        <input id="s-address" name="address" type="email" required />
        <label for="s-reason">Reason</label>
        <select id="s-reason" name="reason">
          <option value="BOUNCE">BOUNCE</option>
          <option value="COMPLAINT">COMPLAINT</option>
        </select>
        <button type="submit">Suppress</button>
      </form>
      ${
        list.length === 0
          ? html`<p>No address is suppressed.</p>`
          : html`<table id="suppressed">
              <thead>
                <tr>
                  <th scope="col">Domain</th>
                  <th scope="col">Address</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Since</th>
                  <th scope="col"><span class="sr">Action</span></th>
                </tr>
              </thead>
              <tbody>
                ${list.map(
                  (x) =>
                    html`<tr>
                      <td>${x.domain}</td>
                      <td>${x.address}</td>
                      <td>${x.reason}</td>
                      <td>${when(x.createdAt)}</td>
                      <td>
                        ${removeButton(
                          '/suppression/remove',
                          { domain: x.domain, address: x.address },
                          `Remove ${x.address} from ${x.domain}'s list`,
                          v,
                        )}
                      </td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
    { v, flash: o.flash },
  );
}

export function capturedListPage(list: CapturedSummary[], q: string, v: View): Html {
  return layout(
    'Captured mail',
    html`<p class="hint">The sandbox delivers nothing: every message it would have sent is here.</p>
      <form method="get" action="/captured" role="search" class="search">
        <label for="cq">Sender, recipient or subject</label>
        <input id="cq" name="q" type="search" value="${q}" />
        <button type="submit">Search</button>
      </form>
      ${
        list.length === 0
          ? html`<p>${q ? 'No captured message matches.' : 'No mail captured yet.'}</p>`
          : html`<table id="captured">
              <thead>
                <tr>
                  <th scope="col">Time</th>
                  <th scope="col">From</th>
                  <th scope="col">To</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Size</th>
                </tr>
              </thead>
              <tbody>
                ${list.map(
                  (m) =>
                    html`<tr>
                      <td>${when(m.at)}</td>
                      <td>${m.from}</td>
                      <td>${m.to}</td>
                      <td><a href="/captured/${m.id}">${m.subject || '(no subject)'}</a></td>
                      <td>${m.size} bytes</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
    { v },
  );
}

export function capturedPage(m: CapturedMessage, v: View): Html {
  return layout(
    m.subject || '(no subject)',
    html`<dl class="envelope">
        <div>
          <dt>From</dt>
          <dd>${m.from}</dd>
        </div>
        <div>
          <dt>To</dt>
          <dd>${m.to}</dd>
        </div>
        <div>
          <dt>Captured</dt>
          <dd>${when(m.at)}, ${m.size} bytes; queue id <a href="/queue/${m.id}">${m.id}</a></dd>
        </div>
      </dl>
      <h2>DKIM</h2>
      ${
        m.dkim.length === 0
          ? html`<p>No DKIM signature.</p>`
          : html`<table id="dkim">
                <thead>
                  <tr>
                    <th scope="col">Domain</th>
                    <th scope="col">Selector</th>
                    <th scope="col">Algorithm</th>
                    <th scope="col">Result</th>
                  </tr>
                </thead>
                <tbody>
                  ${m.dkim.map(
                    (d) =>
                      html`<tr class="${d.result}">
                        <td>${d.domain}</td>
                        <td>${d.selector}</td>
                        <td>${d.algorithm}</td>
                        <td>${d.result}${d.comment ? ` (${d.comment})` : ''}</td>
                      </tr>`,
                  )}
                </tbody>
              </table>
              <p class="hint">
                Checked against this config folder's keys, as <code>posta dns</code> prints them.
              </p>`
      }
      ${
        m.html !== null
          ? html`<h2>HTML</h2>
              <iframe
                id="html"
                title="The message's HTML"
                sandbox
                src="/captured/${m.id}/html"
              ></iframe>`
          : ''
      }
      <h2>Text</h2>
      ${m.text !== null ? html`<pre id="text">${m.text}</pre>` : html`<p>No text part.</p>`}
      <h2>Attachments</h2>
      ${
        m.attachments.length === 0
          ? html`<p>None.</p>`
          : html`<ul id="attachments">
              ${m.attachments.map(
                (a, i) =>
                  html`<li>
                    <a href="/captured/${m.id}/attachments/${i}">${a.filename}</a>
                    (${a.contentType}, ${a.size} bytes)
                  </li>`,
              )}
            </ul>`
      }
      <h2>Header fields</h2>
      <table id="headers">
        <tbody>
          ${m.headers.map(
            (h) =>
              html`<tr>
                <th scope="row">${h.name}</th>
                <td>${h.value}</td>
              </tr>`,
          )}
        </tbody>
      </table>
      <p><a href="/captured/${m.id}/raw">The raw message</a></p>`,
    { v },
  );
}

export function keysPage(keys: (ApiKey & { sent: number })[], v: View): Html {
  return layout(
    'API keys',
    html`<p class="hint">
        <code>posta key create</code> makes a key (its secret is shown once),
        <code>posta key revoke</code> ends one.
      </p>
      ${
        keys.length === 0
          ? html`<p>No access key yet.</p>`
          : html`<table id="keys">
              <thead>
                <tr>
                  <th scope="col">Id</th>
                  <th scope="col">Name</th>
                  <th scope="col">May send from</th>
                  <th scope="col">Rate</th>
                  <th scope="col">Sent, last 24 h</th>
                  <th scope="col">Created</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                ${keys.map(
                  (k) =>
                    html`<tr>
                      <td><code>${k.id}</code></td>
                      <td>${k.name}</td>
                      <td>${k.domains.join(', ')}</td>
                      <td>${k.rate}/s, ${k.daily}/day</td>
                      <td>${k.sent}</td>
                      <td>${when(k.createdAt)}</td>
                      <td>${k.revokedAt === null ? 'in use' : `revoked ${when(k.revokedAt)}`}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }`,
    { v },
  );
}

export interface WebhookView {
  name: string;
  url: string;
  format: string;
  events: readonly string[];
  failures: number;
  failingSince: number | null;
  confirmed: boolean;
  calls: LogEntry[];
}

export function webhooksPage(hooks: WebhookView[], v: View): Html {
  return layout(
    'Webhooks',
    html`${
      hooks.length === 0
        ? html`<p>No webhook endpoint: add a <code>[webhooks.NAME]</code> table to posta.toml.</p>`
        : hooks.map(
            (h) =>
              html`<section aria-labelledby="w-${h.name}">
                <h2 id="w-${h.name}">${h.name}</h2>
                <p>
                  ${h.url}
                  (${h.format}${h.format === 'sns' ? (h.confirmed ? ', confirmed' : ', not confirmed yet') : ''});
                  events: ${h.events.join(', ') || 'all'}.
                  ${
                    h.failures
                      ? html`<strong>${h.failures} calls failed in a row</strong
                          >${h.failingSince ? `, since ${when(h.failingSince)}` : ''}.`
                      : 'Its last call succeeded.'
                  }
                </p>
                ${
                  h.calls.length === 0
                    ? html`<p>No call yet.</p>`
                    : html`<table class="calls">
                        <caption>
                          The last ${h.calls.length} calls
                        </caption>
                        <thead>
                          <tr>
                            <th scope="col">Time</th>
                            <th scope="col">Event</th>
                            <th scope="col">Status</th>
                            <th scope="col">Error</th>
                            <th scope="col">Duration</th>
                          </tr>
                        </thead>
                        <tbody>
                          ${h.calls.map(
                            (c) =>
                              html`<tr
                                class="${c.error || (c.status ?? 0) >= 300 ? 'permanent' : ''}"
                              >
                                <td>${when(c.at)}</td>
                                <td>${c.event ?? ''}</td>
                                <td>${c.status ?? ''}</td>
                                <td>${c.error ?? ''}</td>
                                <td>${c.ms} ms</td>
                              </tr>`,
                          )}
                        </tbody>
                      </table>`
                }
              </section>`,
          )
    }`,
    { v },
  );
}

export const isSearchField = (f: string): f is SearchField => FIELDS.some(([x]) => x === f);

export function confirmPage(id: string, action: Action, v: View): Html {
  const a = ACTIONS[action];
  return layout(
    `${a.title}: ${id}`,
    html`<p>${a.text}</p>
      <form method="post" action="/queue/${id}/${action}" ${hxPost(`/queue/${id}/${action}`)}>
        ${hidden(v.csrf)}
        <button type="submit" class="${action === 'delete' ? 'danger' : ''}">${a.button}</button>
        <a href="/queue/${id}" ${hxGet(`/queue/${id}`)}>Cancel</a>
      </form>`,
    { v },
  );
}

export function errorPage(message: string): Html {
  return layout(
    'Something failed',
    html`<p>The page could not be made: ${message}. The server's log has the details.</p>`,
  );
}

export function notFoundPage(what: string, v?: View): Html {
  return layout(
    'Not found',
    html`<p>${what}</p>
      <p><a href="/queue">Back to the queue</a></p>`,
    { v },
  );
}

export const CSS = `
:root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #666; --line: #ddd; --accent: #0b5cad; --bad: #b00020; }
@media (prefers-color-scheme: dark) { :root { --fg: #eee; --bg: #161616; --muted: #aaa; --line: #333; --accent: #7cb7ff; --bad: #ff6b6b; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
header { border-bottom: 1px solid var(--line); padding: .5rem 1rem; }
nav { display: flex; gap: 1rem; align-items: center; flex-wrap: wrap; }
nav .brand { font-weight: 700; margin-right: auto; }
main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
a { color: var(--accent); }
a:focus, button:focus, input:focus { outline: 3px solid var(--accent); outline-offset: 2px; }
table { border-collapse: collapse; width: 100%; display: block; overflow-x: auto; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
caption { text-align: left; color: var(--muted); }
dl.figures { display: flex; flex-wrap: wrap; gap: 1rem 2rem; }
dl div { min-width: 10rem; }
dt { color: var(--muted); }
dd { margin: 0; font-size: 1.4rem; }
dl.envelope dd { font-size: 1rem; }
form.inline { display: inline; }
form.inline input { font: inherit; padding: .35rem; width: min(14rem, 100%); }
label.check { display: flex; gap: .5rem; align-items: center; }
button, .button { font: inherit; padding: .35rem .8rem; border: 1px solid var(--accent); background: none; color: var(--accent); border-radius: 4px; cursor: pointer; text-decoration: none; }
.danger { border-color: var(--bad); color: var(--bad); }
.error { color: var(--bad); }
.flash { border-left: 4px solid var(--accent); padding: .3rem .8rem; }
tr.permanent td, tr.expired td { color: var(--bad); }
figure { margin: 0 0 1.5rem; }
figcaption { color: var(--muted); }
.chart { min-height: 220px; max-width: 900px; }
.totals span { margin-right: 1rem; }
label { display: block; margin: .5rem 0 .2rem; }
input[type=password] { font: inherit; padding: .35rem; width: min(20rem, 100%); }
.hint { color: var(--muted); }
form.search { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
form.search label { margin: 0; }
form.row { margin: 1rem 0; }
form.row input, form.row select { font: inherit; padding: .35rem; width: min(28rem, 100%); display: block; }
form.row button { margin-top: .5rem; }
form.row label.check input { width: auto; display: inline; }
iframe#html { width: 100%; min-height: 24rem; border: 1px solid var(--line); background: #fff; }
pre#zone { white-space: pre-wrap; overflow-wrap: anywhere; }
pre#text { white-space: pre-wrap; border: 1px solid var(--line); padding: .5rem; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
select, input[type=search] { font: inherit; padding: .35rem; }
`;
