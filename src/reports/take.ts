/**
 * A report mail (mail.ts) that port 25 has queued, read and stored: each
 * attachment unpacked (unpack.ts), parsed (dmarc.ts, tlsrpt.ts), kept when
 * it is about one of our domains, and stored once per reporter and report
 * id (store.ts) with whether its sender was verified. Reports are
 * information, not commands: an unverified sender's report is stored too,
 * and shown as unverified. Nothing here throws: a broken report is a log
 * line, and the mail is forwarded all the same.
 */
import type { Logger } from '../log/log.ts';
import { messageStream, type Held } from '../message/held.ts';
import type { SenderAuth } from '../verify/inbound.ts';
import { parseDmarcReport } from './dmarc.ts';
import { reportAttachments, type ReportKind } from './mail.ts';
import type { NewReport, Receipt, Stored } from './store.ts';
import { parseTlsReport } from './tlsrpt.ts';
import { unpack } from './unpack.ts';
import type { ReportBudget } from './budget.ts';

export interface ReportDeps {
  /** Stores a report (queue/spool.ts recordReport). */
  record: (r: NewReport) => Promise<Stored>;
  /** Our domains: a report about another domain is not ours to keep. */
  domains: readonly string[];
  /** What port 25 may spend on reading reports (budget.ts). */
  budget: ReportBudget;
  log: Logger;
}

const STORED_LOG: Record<Stored, string> = {
  stored: 'report stored',
  duplicate: 'report stored already',
  'over-limit': 'report not kept: too many reports from unverified senders today',
};

const ours = (name: string, domains: readonly string[]) =>
  domains.some((d) => name === d || name.endsWith(`.${d}`));

/** Reads the reports in `message`, a mail of `kind` (reportKind); never throws. */
export async function takeReports(
  deps: ReportDeps,
  message: Held,
  kind: ReportKind,
  queueId: string,
  sender: { address: string; auth: SenderAuth | undefined },
): Promise<void> {
  const receipt: Receipt = {
    message: queueId,
    sender: sender.address,
    verified: sender.auth?.spf === 'pass' || sender.auth?.dkim === 'pass',
    receivedAt: Date.now(),
  };
  const log = { qid: queueId, kind, from: sender.address };
  try {
    const parts = await reportAttachments(messageStream(message), kind);
    if (parts.length === 0) deps.log.info(log, 'report not read: no report attachment');
    for (const part of parts) {
      const what = { ...log, file: part.filename || part.contentType };
      try {
        if (part.tooLarge) throw new Error('the attachment is too large');
        const spent = "the hour's budget for reading reports is spent";
        if (!deps.budget.any()) throw new Error(spent);
        const bytes = unpack(part.data);
        if (!deps.budget.take(bytes.length)) throw new Error(spent);
        const doc = bytes.toString('utf8');
        const r = kind === 'dmarc' ? dmarcOf(doc, deps, receipt) : tlsOf(doc, deps, receipt);
        if (typeof r === 'string') {
          deps.log.info({ ...what }, `report not kept: ${r}`);
          continue;
        }
        const stored = await deps.record(r);
        deps.log.info(
          { ...what, org: r.report.org, id: r.report.reportId, verified: receipt.verified },
          STORED_LOG[stored],
        );
      } catch (err) {
        deps.log.warn({ ...what, err: (err as Error).message }, 'report not read');
      }
    }
  } catch (err) {
    deps.log.warn({ ...log, err: (err as Error).message }, 'report not read');
  }
}

function dmarcOf(doc: string, deps: ReportDeps, receipt: Receipt): NewReport | string {
  const report = parseDmarcReport(doc);
  if (!ours(report.domain, deps.domains)) return `it is about ${report.domain}`;
  return { kind: 'dmarc', report, receipt };
}

function tlsOf(doc: string, deps: ReportDeps, receipt: Receipt): NewReport | string {
  const parsed = parseTlsReport(doc);
  const policies = parsed.policies.filter((p) => ours(p.domain, deps.domains));
  if (policies.length === 0) {
    return `it is about ${parsed.policies.map((p) => p.domain).join(', ') || 'no policy domain'}`;
  }
  return { kind: 'tlsrpt', report: { ...parsed, policies }, receipt };
}
