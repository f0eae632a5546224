/**
 * `posta reports`: what the DMARC aggregate and TLS reports that receivers
 * mailed to postmaster@ say (reports/summary.ts, the dashboard's Reports
 * page shows the same): who sends as each domain and whether it passes,
 * and which senders fail TLS to posta.
 */
import { loadConfig } from '../config/load.ts';
import { openQueueDbIfAny } from '../queue/spool.ts';
import { REPORT_DAYS } from '../reports/store.ts';
import {
  reportSummary,
  type DmarcSource,
  type Reporter,
  type ReportSummary,
} from '../reports/summary.ts';
import { positionals, str, type Command } from './command.ts';
import { UsageError } from '../errors.ts';

export const reports: Command = {
  name: 'reports',
  help: `Usage: posta reports [--domain DOMAIN] [--days N] [--json]

What the reports that receivers mail to postmaster@ each domain (the rua
address \`posta dns\` publishes) say. DMARC aggregate reports (RFC 7489): per
source IP that sent mail From the domain, the messages, how many passed DKIM
and SPF aligned, what the receivers did with them, and who reported them; a
source marked ! failed DMARC: someone else sending as the domain, or a
service of yours not in its SPF record and not signing with its DKIM key.
TLS reports (RFC 8460): per sender, the sessions to posta that succeeded and
failed, with the failures by type. A report whose sender was not verified
(SPF or DKIM) is marked so. Reports received in the last N days (default
and at most ${REPORT_DAYS}, as long as they are kept). --json prints the summary as JSON.`,
  options: {
    domain: { type: 'string' },
    days: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    positionals(this, args, []);
    const daysText = str(args, 'days') ?? String(REPORT_DAYS);
    if (!/^\d{1,3}$/.test(daysText) || Number(daysText) < 1 || Number(daysText) > REPORT_DAYS) {
      throw new UsageError(
        `--days must be a whole number from 1 to ${REPORT_DAYS}, not "${daysText}".`,
      );
    }
    const config = await loadConfig(args.dir);
    const db = openQueueDbIfAny(config.dataDir);
    try {
      const days = Number(daysText);
      const summary = reportSummary(db, { domain: str(args, 'domain'), days });
      process.stdout.write(
        args.values.json === true ? `${JSON.stringify(summary, null, 2)}\n` : text(summary, days),
      );
    } finally {
      db.close();
    }
  },
};

const who = (r: Reporter[]) =>
  r.map((x) => (x.verified ? x.org : `${x.org} (unverified)`)).join(', ');

const dispositions = (s: DmarcSource) =>
  Object.entries(s.dispositions)
    .map(([d, n]) => `${d} ${n}`)
    .join(', ');

function text(s: ReportSummary, days: number): string {
  const out: string[] = [];
  if (s.dmarc.length === 0) {
    out.push(`No DMARC aggregate report received in the last ${days} days.`);
  }
  for (const d of s.dmarc) {
    out.push(
      `DMARC ${d.domain}: ${d.reports} reports, ${d.messages} messages, ${d.dmarcFail} failed DMARC`,
    );
    const rows = [
      [
        '',
        'source',
        'messages',
        'DKIM pass',
        'SPF pass',
        'DMARC fail',
        'disposition',
        'reported by',
      ],
      ...d.sources.map((x) => [
        x.failing ? '!' : ' ',
        x.ip,
        String(x.messages),
        String(x.dkimPass),
        String(x.spfPass),
        String(x.dmarcFail),
        dispositions(x),
        who(x.reporters),
      ]),
    ];
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
    for (const r of rows) {
      out.push(
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
          .join('  ')
          .trimEnd(),
      );
    }
    if (d.sources.some((x) => x.failing)) {
      out.push(
        `! failed DMARC: not your server, or a service that sends as ${d.domain} without being in its SPF record or signing with its DKIM key.`,
      );
    }
    out.push('');
  }
  if (s.tls.length === 0) out.push(`No TLS report received in the last ${days} days.`);
  for (const t of s.tls) {
    const failures = t.failures.map(([type, n]) => `${type} ${n}`).join(', ');
    out.push(
      `TLS ${t.domain} from ${t.org}${t.verified ? '' : ' (unverified)'}: ${t.reports} reports, ` +
        `${t.successful} sessions succeeded, ${t.failed} failed${failures ? `: ${failures}` : ''}`,
    );
  }
  return `${out.join('\n')}\n`;
}
