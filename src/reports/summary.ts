/**
 * What the stored reports (store.ts) say, for `posta reports` and the
 * dashboard's Reports page, which both show this and nothing else.
 *
 * DMARC, per domain (the header From of the records): per source IP the
 * messages, how many passed DKIM and SPF aligned (DMARC's own evaluation,
 * RFC 7489 §4.2: a message passes when either does), the dispositions the
 * receivers applied, and who reported it. A source with messages failing
 * DMARC is flagged: someone else sending as the domain, or a service of
 * its own that is not in SPF and does not sign with the domain's DKIM key.
 *
 * TLS-RPT, per policy domain and reporter (the sending organization): the
 * successful and failed sessions, and the failures by result type
 * (RFC 8460 §4.3).
 */
import type { Db } from '../db/db.ts';
import type { TlsFailure } from './tlsrpt.ts';

export interface Reporter {
  org: string;
  /** Every report of this org in the window came from a verified sender. */
  verified: boolean;
}

export interface DmarcSource {
  ip: string;
  messages: number;
  dkimPass: number;
  spfPass: number;
  /** Messages with neither DKIM nor SPF aligned: DMARC failed. */
  dmarcFail: number;
  /** Disposition (none, quarantine, reject) to messages. */
  dispositions: Record<string, number>;
  reporters: Reporter[];
  /** Some of its mail failed DMARC. */
  failing: boolean;
}

export interface DmarcDomain {
  domain: string;
  reports: number;
  messages: number;
  dmarcFail: number;
  sources: DmarcSource[];
}

export interface TlsReceiver {
  /** The policy domain: ours, the receiving side. */
  domain: string;
  /** The reporting organization: the sending side. */
  org: string;
  verified: boolean;
  reports: number;
  policyTypes: string[];
  successful: number;
  failed: number;
  /** Result type to failed sessions, most first. */
  failures: [string, number][];
}

export interface ReportSummary {
  /** Reports received from this time on (ms). */
  since: number;
  dmarc: DmarcDomain[];
  tls: TlsReceiver[];
}

export interface SummaryQuery {
  /** Only this domain (and its subdomains). */
  domain?: string | undefined;
  days: number;
  now?: number;
}

const inDomain = (name: string, domain: string | undefined) =>
  !domain || name === domain || name.endsWith(`.${domain}`);

function reportersOf(rows: { org: string; verified: number }[]): Reporter[] {
  const by = new Map<string, boolean>();
  for (const r of rows) by.set(r.org, (by.get(r.org) ?? true) && r.verified === 1);
  return [...by]
    .map(([org, verified]) => ({ org, verified }))
    .sort((a, b) => a.org.localeCompare(b.org));
}

interface DmarcRow {
  domain: string;
  ip: string;
  org: string;
  verified: number;
  disposition: string;
  dkim: string;
  spf: string;
  n: number;
  reports: number;
}

function dmarcSummary(db: Db, since: number, domain: string | undefined): DmarcDomain[] {
  const rows = db
    .prepare(
      `SELECT x.header_from AS domain, x.source_ip AS ip, r.org, r.verified, x.disposition,
         x.dkim, x.spf, CAST(SUM(x.count) AS INTEGER) AS n, COUNT(DISTINCT r.id) AS reports
       FROM dmarc_records x JOIN dmarc_reports r ON r.id = x.report
       WHERE r.received_at >= ?
       GROUP BY 1, 2, 3, 4, 5, 6, 7`,
    )
    .all(since) as unknown as DmarcRow[];
  const reports = db
    .prepare(
      `SELECT x.header_from AS domain, COUNT(DISTINCT r.id) AS n
       FROM dmarc_records x JOIN dmarc_reports r ON r.id = x.report
       WHERE r.received_at >= ? GROUP BY 1`,
    )
    .all(since) as { domain: string; n: number }[];
  const domains = new Map<string, DmarcDomain>();
  const sources = new Map<string, DmarcSource & { rows: DmarcRow[] }>();
  for (const row of rows) {
    if (!inDomain(row.domain, domain)) continue;
    let d = domains.get(row.domain);
    if (!d) {
      const n = reports.find((r) => r.domain === row.domain)?.n ?? 0;
      d = { domain: row.domain, reports: Number(n), messages: 0, dmarcFail: 0, sources: [] };
      domains.set(row.domain, d);
    }
    const key = `${row.domain} ${row.ip}`;
    let s = sources.get(key);
    if (!s) {
      s = {
        ip: row.ip,
        messages: 0,
        dkimPass: 0,
        spfPass: 0,
        dmarcFail: 0,
        dispositions: {},
        reporters: [],
        failing: false,
        rows: [],
      };
      sources.set(key, s);
      d.sources.push(s);
    }
    const n = Number(row.n);
    s.rows.push(row);
    s.messages += n;
    d.messages += n;
    if (row.dkim === 'pass') s.dkimPass += n;
    if (row.spf === 'pass') s.spfPass += n;
    // RFC 7489 §4.2: DMARC passes when an aligned DKIM or SPF passes
    if (row.dkim !== 'pass' && row.spf !== 'pass') {
      s.dmarcFail += n;
      d.dmarcFail += n;
    }
    s.dispositions[row.disposition] = (s.dispositions[row.disposition] ?? 0) + n;
  }
  for (const d of domains.values()) {
    d.sources = d.sources.map((s) => {
      const { rows: own, ...rest } = s as DmarcSource & { rows: DmarcRow[] };
      return { ...rest, reporters: reportersOf(own), failing: rest.dmarcFail > 0 };
    });
    // failing sources first, then the busiest
    d.sources.sort((a, b) => Number(b.failing) - Number(a.failing) || b.messages - a.messages);
  }
  return [...domains.values()].sort((a, b) => a.domain.localeCompare(b.domain));
}

function tlsSummary(db: Db, since: number, domain: string | undefined): TlsReceiver[] {
  const rows = db
    .prepare(
      `SELECT p.domain, r.org, r.verified, r.id AS report, p.type,
         CAST(p.successful AS INTEGER) AS successful, CAST(p.failed AS INTEGER) AS failed, p.failures
       FROM tls_policies p JOIN tls_reports r ON r.id = p.report
       WHERE r.received_at >= ?`,
    )
    .all(since) as {
    domain: string;
    org: string;
    verified: number;
    report: number;
    type: string;
    successful: number;
    failed: number;
    failures: string;
  }[];
  const out = new Map<string, TlsReceiver & { ids: Set<number>; types: Map<string, number> }>();
  for (const row of rows) {
    if (!inDomain(row.domain, domain)) continue;
    const key = `${row.domain} ${row.org}`;
    let t = out.get(key);
    if (!t) {
      t = {
        domain: row.domain,
        org: row.org,
        verified: true,
        reports: 0,
        policyTypes: [],
        successful: 0,
        failed: 0,
        failures: [],
        ids: new Set(),
        types: new Map(),
      };
      out.set(key, t);
    }
    t.ids.add(row.report);
    t.verified &&= row.verified === 1;
    if (!t.policyTypes.includes(row.type)) t.policyTypes.push(row.type);
    t.successful += Number(row.successful);
    t.failed += Number(row.failed);
    for (const f of JSON.parse(row.failures) as TlsFailure[]) {
      t.types.set(f.resultType, (t.types.get(f.resultType) ?? 0) + f.count);
    }
  }
  return [...out.values()]
    .map(({ ids, types, ...t }) => ({
      ...t,
      reports: ids.size,
      failures: [...types].sort((a, b) => b[1] - a[1]),
    }))
    .sort((a, b) => a.domain.localeCompare(b.domain) || a.org.localeCompare(b.org));
}

/** The reports received in the last `days` days, summarised. */
export function reportSummary(db: Db, q: SummaryQuery): ReportSummary {
  const since = (q.now ?? Date.now()) - q.days * 86_400_000;
  const domain = q.domain?.toLowerCase();
  return { since, dmarc: dmarcSummary(db, since, domain), tls: tlsSummary(db, since, domain) };
}
