/**
 * SMTP TLS reports (RFC 8460 §4): a sending MTA's daily account of its
 * sessions to our MX hosts, as JSON: per policy (MTA-STS `sts`, DANE
 * `tlsa`, or `no-policy-found`) of a policy domain, the successful and
 * failed session counts, and the failures by result type
 * (starttls-not-supported, certificate-expired, sts-policy-fetch-error,
 * validation-failure..., §4.3) with the MX and addresses involved.
 *
 * The document comes from anyone (unpack.ts bounds its size): zod checks
 * its shape, strings are cut to MAX_TEXT characters, and the policies and
 * failure details are bounded in number. Unknown fields are ignored, as
 * §4.4 lets reporters add them.
 */
import { z } from 'zod';
import { ReportError } from './dmarc.ts';

const MAX_TEXT = 255;
const MAX_POLICIES = 1000;
const MAX_FAILURES = 10_000;

const text = z.string().transform((s) => s.slice(0, MAX_TEXT));
const count = z
  .number()
  .int()
  .nonnegative()
  .max(2 ** 40);
const time = text.refine((s) => !Number.isNaN(Date.parse(s)), 'not an RFC 3339 date-time');

const schema = z.object({
  'organization-name': text,
  'date-range': z.object({ 'start-datetime': time, 'end-datetime': time }),
  'contact-info': text.optional(),
  'report-id': text,
  policies: z
    .array(
      z.object({
        policy: z.object({
          'policy-type': text,
          'policy-domain': text,
          'mx-host': z.array(text).max(100).optional(),
        }),
        summary: z.object({
          'total-successful-session-count': count,
          'total-failure-session-count': count,
        }),
        'failure-details': z
          .array(
            z.object({
              'result-type': text,
              'sending-mta-ip': text.optional(),
              'receiving-mx-hostname': text.optional(),
              'receiving-ip': text.optional(),
              'failed-session-count': count,
              'failure-reason-code': text.optional(),
            }),
          )
          .max(MAX_FAILURES)
          .optional(),
      }),
    )
    .max(MAX_POLICIES),
});

export interface TlsFailure {
  resultType: string;
  sendingIp: string;
  receivingMx: string;
  count: number;
}

export interface TlsPolicy {
  type: string;
  domain: string;
  mxHosts: string[];
  successful: number;
  failed: number;
  failures: TlsFailure[];
}

export interface TlsReport {
  org: string;
  contact: string;
  reportId: string;
  /** Milliseconds since the epoch. */
  begin: number;
  end: number;
  policies: TlsPolicy[];
}

/** The report in `json`; throws ReportError when it is not one. */
export function parseTlsReport(json: string): TlsReport {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new ReportError(`the report is not JSON (${(err as Error).message})`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ReportError(
      `the report does not follow RFC 8460 §4.4: ${issue?.path.join('.') || 'the document'}: ${issue?.message ?? ''}`,
    );
  }
  const r = parsed.data;
  const failures = r.policies.reduce((n, p) => n + (p['failure-details']?.length ?? 0), 0);
  if (failures > MAX_FAILURES) {
    throw new ReportError(`the report has ${failures} failure details, over ${MAX_FAILURES}`);
  }
  return {
    org: r['organization-name'],
    contact: r['contact-info'] ?? '',
    reportId: r['report-id'],
    begin: Date.parse(r['date-range']['start-datetime']),
    end: Date.parse(r['date-range']['end-datetime']),
    policies: r.policies.map((p) => ({
      type: p.policy['policy-type'].toLowerCase(),
      domain: p.policy['policy-domain'].toLowerCase(),
      mxHosts: p.policy['mx-host'] ?? [],
      successful: p.summary['total-successful-session-count'],
      failed: p.summary['total-failure-session-count'],
      failures: (p['failure-details'] ?? []).map((f) => ({
        resultType: f['result-type'].toLowerCase(),
        sendingIp: f['sending-mta-ip'] ?? '',
        receivingMx: f['receiving-mx-hostname'] ?? f['receiving-ip'] ?? '',
        count: f['failed-session-count'],
      })),
    })),
  };
}
