/**
 * The dashboard's Reports page: the summary `posta reports` prints
 * (reports/summary.ts), for the admin. Server-rendered with hono/html like
 * pages.ts, whose layout it uses; every value a report gave is escaped by
 * the template, since anyone on the internet may have written it.
 */
import { html } from 'hono/html';
import type { DmarcDomain, Reporter, ReportSummary, TlsReceiver } from '../../reports/summary.ts';
import { layout, type Html, type View } from './pages.ts';

const who = (r: Reporter[]) =>
  r.map((x) => (x.verified ? x.org : `${x.org} (sender not verified)`)).join(', ');

function dmarcSection(d: DmarcDomain): Html {
  const failing = d.sources.some((s) => s.failing);
  return html`<section aria-labelledby="dmarc-${d.domain}">
    <h3 id="dmarc-${d.domain}">${d.domain}</h3>
    <p>
      ${d.reports} reports, ${d.messages} messages,
      ${d.dmarcFail ? html`<strong class="error">${d.dmarcFail} failed DMARC</strong>` : 'none failed DMARC'}.
    </p>
    <table class="dmarc">
      <thead>
        <tr>
          <th scope="col">Source</th>
          <th scope="col">Messages</th>
          <th scope="col">DKIM pass</th>
          <th scope="col">SPF pass</th>
          <th scope="col">DMARC fail</th>
          <th scope="col">Disposition</th>
          <th scope="col">Reported by</th>
        </tr>
      </thead>
      <tbody>
        ${d.sources.map(
          (s) =>
            html`<tr class="${s.failing ? 'permanent' : ''}">
              <td>${s.failing ? html`<strong>! </strong>` : ''}<code>${s.ip}</code></td>
              <td>${s.messages}</td>
              <td>${s.dkimPass}</td>
              <td>${s.spfPass}</td>
              <td>${s.dmarcFail}</td>
              <td>
                ${Object.entries(s.dispositions)
                  .map(([k, n]) => `${k} ${n}`)
                  .join(', ')}
              </td>
              <td>${who(s.reporters)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
    ${
      failing
        ? html`<p class="hint">
            ! failed DMARC: not your server, or a service that sends as ${d.domain} without being in
            its SPF record or signing with its DKIM key.
          </p>`
        : ''
    }
  </section>`;
}

function tlsTable(tls: TlsReceiver[]): Html {
  return html`<table class="tls">
    <thead>
      <tr>
        <th scope="col">Domain</th>
        <th scope="col">Reported by</th>
        <th scope="col">Reports</th>
        <th scope="col">Sessions succeeded</th>
        <th scope="col">Failed</th>
        <th scope="col">Failures by type</th>
      </tr>
    </thead>
    <tbody>
      ${tls.map(
        (t) =>
          html`<tr class="${t.failed ? 'permanent' : ''}">
            <td>${t.domain}</td>
            <td>${t.verified ? t.org : `${t.org} (sender not verified)`}</td>
            <td>${t.reports}</td>
            <td>${t.successful}</td>
            <td>${t.failed}</td>
            <td>${t.failures.map(([type, n]) => `${type} ${n}`).join(', ')}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function reportsPage(s: ReportSummary, q: { days: number }, v: View): Html {
  return layout(
    'Reports',
    html`<p class="hint">
        What receivers mailed to postmaster@ each domain in the last ${q.days} days (the rua address
        of its DMARC and TLS-RPT records); <code>posta reports</code> prints the same.
      </p>
      <h2>DMARC aggregate reports</h2>
      ${s.dmarc.length === 0 ? html`<p>No DMARC aggregate report yet.</p>` : s.dmarc.map(dmarcSection)}
      <h2>TLS reports</h2>
      ${s.tls.length === 0 ? html`<p>No TLS report yet.</p>` : tlsTable(s.tls)}`,
    { v },
  );
}
