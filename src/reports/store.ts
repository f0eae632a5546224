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
 *
 * Since anyone may mail one, an unverified sender cannot crowd out the
 * truth: a verified report replaces an unverified one of the same reporter
 * and id (a forger who guessed the id first), and at most UNVERIFIED_PER_DAY
 * unverified reports of each kind are stored a day, so they cannot fill the
 * disk.
 */
import { prepared, type Db } from '../db/db.ts';
import type { DmarcReport } from './dmarc.ts';
import type { TlsReport } from './tlsrpt.ts';

/** Unverified reports stored a day, per kind; past it they are logged, not kept. */
export const UNVERIFIED_PER_DAY = 100;

/** What became of a report: stored, a duplicate of one stored, or over the day's unverified ones. */
export type Stored = 'stored' | 'duplicate' | 'over-limit';

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

/** Store a report, unless that reporter's report of that id is stored already (or, unverified, one too many today). */
export function insertReport(db: Db, r: NewReport): Stored {
  const table = r.kind === 'dmarc' ? 'dmarc_reports' : 'tls_reports';
  const { org, reportId } = r.report;
  if (r.receipt.verified) {
    // a forger's copy, stored first, gives way (its records go with it: ON DELETE CASCADE)
    prepared(db, `DELETE FROM ${table} WHERE org = ? AND report_id = ? AND verified = 0`).run(
      org,
      reportId,
    );
  } else {
    const today = prepared(
      db,
      `SELECT count(*) AS n FROM ${table} WHERE received_at >= ? AND verified = 0`,
    ).get(r.receipt.receivedAt - 86_400_000) as { n: number };
    if (today.n >= UNVERIFIED_PER_DAY) return 'over-limit';
  }
  const stored =
    r.kind === 'dmarc' ? insertDmarc(db, r.report, r.receipt) : insertTls(db, r.report, r.receipt);
  return stored ? 'stored' : 'duplicate';
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
