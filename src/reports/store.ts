/**
 * The stored DMARC aggregate and TLS-RPT reports (tables dmarc_reports,
 * dmarc_records, tls_reports, tls_policies; queue/spool.ts migrations).
 *
 * Invariants: a report is stored once per reporter and report id (RFC 7489
 * §7.2.1.1 and RFC 8460 §4.4 make the pair unique; a resent report is a
 * duplicate, not more mail); each row says who mailed it and whether port
 * 25 verified that sender (SPF, or DKIM aligned with its domain), since
 * anyone may mail a report; reports go after REPORT_DAYS, by the time they
 * were received (a sender picks the dates inside, so those cannot decide).
 */
import { prepared, type Db } from '../db/db.ts';
import type { DmarcReport } from './dmarc.ts';
import type { TlsReport } from './tlsrpt.ts';

/** Reports are kept as long as the delivery log and the events (delivery/scheduler.ts). */
export const REPORT_DAYS = 30;

/** Who mailed a report, and when it came. */
export interface Receipt {
  /** The queue id of the mail it came in. */
  message: string;
  /** The envelope sender. */
  sender: string;
  verified: boolean;
  receivedAt: number;
}

export type NewReport =
  | { kind: 'dmarc'; report: DmarcReport; receipt: Receipt }
  | { kind: 'tlsrpt'; report: TlsReport; receipt: Receipt };

/** Store a report; false when that reporter's report of that id is stored already. */
export function insertReport(db: Db, r: NewReport): boolean {
  return r.kind === 'dmarc'
    ? insertDmarc(db, r.report, r.receipt)
    : insertTls(db, r.report, r.receipt);
}

function insertDmarc(db: Db, r: DmarcReport, by: Receipt): boolean {
  const row = prepared(
    db,
    `INSERT INTO dmarc_reports (org, report_id, email, domain, policy, begin_at, end_at,
       received_at, message, sender, verified)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (org, report_id) DO NOTHING RETURNING id`,
  ).get(
    r.org,
    r.reportId,
    r.email,
    r.domain,
    r.policy,
    r.begin,
    r.end,
    by.receivedAt,
    by.message,
    by.sender,
    by.verified ? 1 : 0,
  ) as { id: number } | undefined;
  if (!row) return false;
  const add = prepared(
    db,
    `INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim, spf, header_from, detail)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const x of r.records) {
    const detail = { reasons: x.reasons, dkim: x.dkimResults, spf: x.spfResults };
    add.run(
      row.id,
      x.sourceIp,
      x.count,
      x.disposition,
      x.dkim,
      x.spf,
      x.headerFrom || r.domain,
      JSON.stringify(detail),
    );
  }
  return true;
}

function insertTls(db: Db, r: TlsReport, by: Receipt): boolean {
  const row = prepared(
    db,
    `INSERT INTO tls_reports (org, report_id, contact, begin_at, end_at, received_at, message,
       sender, verified)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (org, report_id) DO NOTHING RETURNING id`,
  ).get(
    r.org,
    r.reportId,
    r.contact,
    r.begin,
    r.end,
    by.receivedAt,
    by.message,
    by.sender,
    by.verified ? 1 : 0,
  ) as { id: number } | undefined;
  if (!row) return false;
  const add = prepared(
    db,
    `INSERT INTO tls_policies (report, type, domain, mx_hosts, successful, failed, failures)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  for (const p of r.policies) {
    add.run(
      row.id,
      p.type,
      p.domain,
      JSON.stringify(p.mxHosts),
      p.successful,
      p.failed,
      JSON.stringify(p.failures),
    );
  }
  return true;
}

/** Forget the reports received before `before` (their records and policies go with them). */
export function pruneReports(db: Db, before: number): void {
  prepared(db, 'DELETE FROM dmarc_reports WHERE received_at < ?').run(before);
  prepared(db, 'DELETE FROM tls_reports WHERE received_at < ?').run(before);
}
