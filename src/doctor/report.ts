/**
 * The doctor's report: one result per check, each with a stable id, a status
 * (pass, fail, or warn for "works but" and "could not test"), what was found,
 * and for fail and warn a one-line fix. Printed as text (✓ ✗ ! per line) or as
 * JSON `{domain, checks, ok}`; `ok` is false when any check failed, which is
 * also what makes `posta doctor` exit 1.
 */

export type CheckStatus = 'pass' | 'fail' | 'warn';

export interface CheckResult {
  /** Stable: scripts select on it (mx, address, ptr, spf, dkim, ...). */
  id: string;
  status: CheckStatus;
  title: string;
  /** What was found, one line. */
  detail: string;
  /** What to do, one line; given for fail and warn. */
  fix?: string;
}

export interface Report {
  domain: string;
  checks: CheckResult[];
  ok: boolean;
}

/** Every check, by id, with the name the text report shows; in report order. */
export const TITLES = {
  mx: 'MX',
  address: 'A/AAAA',
  ptr: 'PTR',
  spf: 'SPF',
  'spf-helo': 'HELO SPF',
  dkim: 'DKIM',
  dmarc: 'DMARC',
  'mta-sts': 'MTA-STS',
  'tls-rpt': 'TLS-RPT',
  postmaster: 'Postmaster',
  certificate: 'Certificate',
  listeners: 'Listeners',
  'outbound-25': 'Outbound port 25',
  dnsbl: 'DNSBL',
} as const;

export type CheckId = keyof typeof TITLES;

export const pass = (id: CheckId, detail: string): CheckResult => ({
  id,
  status: 'pass',
  title: TITLES[id],
  detail,
});

export const fail = (id: CheckId, detail: string, fix: string): CheckResult => ({
  id,
  status: 'fail',
  title: TITLES[id],
  detail,
  fix,
});

export const warn = (id: CheckId, detail: string, fix: string): CheckResult => ({
  id,
  status: 'warn',
  title: TITLES[id],
  detail,
  fix,
});

export function report(domain: string, checks: CheckResult[]): Report {
  return { domain, checks, ok: checks.every((c) => c.status !== 'fail') };
}

const MARK: Record<CheckStatus, string> = { pass: '✓', fail: '✗', warn: '!' };

export function formatText(r: Report, heading: string): string {
  const width = Math.max(...r.checks.map((c) => c.title.length));
  const lines = [heading, ''];
  for (const c of r.checks) {
    lines.push(`${MARK[c.status]} ${c.title.padEnd(width)}  ${c.detail}`);
    if (c.fix && c.status !== 'pass') lines.push(`  ${' '.repeat(width)}  fix: ${c.fix}`);
  }
  const failed = r.checks.filter((c) => c.status === 'fail').length;
  const warned = r.checks.filter((c) => c.status === 'warn').length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push('');
  if (failed) {
    lines.push(
      `${plural(failed, 'check')} failed${warned ? `, ${plural(warned, 'warning')}` : ''}: fix the ✗ lines and run posta doctor again.`,
    );
  } else if (warned) {
    lines.push(`No check failed; ${plural(warned, 'warning')} (!) to look at.`);
  } else {
    lines.push(`All ${r.checks.length} checks passed.`);
  }
  return `${lines.join('\n')}\n`;
}
