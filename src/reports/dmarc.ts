/**
 * DMARC aggregate reports (RFC 7489 §7.2, the schema of its Appendix C, and
 * the DMARCbis draft's, which adds `<version>` and a namespace): a
 * receiver's daily account of the mail it saw From a domain, one `<record>`
 * per source IP and outcome. This reads what the summary needs: the
 * reporter (org_name, email, report_id, date_range), the domain and policy
 * published, and per record the source IP, the message count, the
 * disposition, the DMARC-evaluated (aligned) DKIM and SPF results, the
 * header From, and the raw DKIM and SPF results.
 *
 * The document comes from anyone (unpack.ts bounds its size; xml.ts its
 * syntax): every string is cut to MAX_TEXT characters, a report has at most
 * MAX_RECORDS records, and a missing required field refuses the report.
 */
import { isIP } from 'node:net';
import { child, children, parseXml, textAt, type XmlElement } from './xml.ts';

export const MAX_RECORDS = 5_000;
const MAX_TEXT = 255;
/** Elements per record are about 25; the rest of a report a few dozen. */
// a record is some 20 elements; the tree of a full report stays some tens of MB
const XML_LIMITS = { maxElements: MAX_RECORDS * 25 + 100, maxDepth: 12 };

export class ReportError extends Error {}

export interface AuthResult {
  domain: string;
  result: string;
  /** DKIM's selector, SPF's scope (mfrom, helo). */
  detail: string;
}

export interface DmarcRecord {
  sourceIp: string;
  count: number;
  /** none, quarantine or reject (RFC 7489 §6.3 p=). */
  disposition: string;
  /** pass or fail: DMARC's aligned results (policy_evaluated). */
  dkim: string;
  spf: string;
  headerFrom: string;
  /** Why the receiver applied another disposition (forwarded, mailing_list...). */
  reasons: string[];
  dkimResults: AuthResult[];
  spfResults: AuthResult[];
}

export interface DmarcReport {
  org: string;
  email: string;
  reportId: string;
  /** Unix seconds, as the report gives them. */
  begin: number;
  end: number;
  domain: string;
  policy: string;
  records: DmarcRecord[];
}

const cut = (s: string) => s.slice(0, MAX_TEXT);
const lower = (s: string) => cut(s).toLowerCase();

function seconds(el: XmlElement | undefined, name: string): number {
  const t = textAt(el, name);
  if (!/^\d{1,12}$/.test(t)) throw new ReportError(`date_range/${name} is not a time: "${cut(t)}"`);
  return Number(t);
}

function required(root: XmlElement, ...path: string[]): string {
  const t = textAt(root, ...path);
  if (!t) throw new ReportError(`the report has no ${path.join('/')}`);
  return cut(t);
}

function readRecord(r: XmlElement, n: number): DmarcRecord {
  const row = child(r, 'row');
  const ip = textAt(row, 'source_ip');
  if (!isIP(ip)) throw new ReportError(`record ${n} has no source_ip address: "${cut(ip)}"`);
  const countText = textAt(row, 'count');
  if (!/^\d{1,10}$/.test(countText)) {
    throw new ReportError(`record ${n} has no message count: "${cut(countText)}"`);
  }
  const evaluated = child(row, 'policy_evaluated');
  const auth = child(r, 'auth_results');
  const results = (kind: 'dkim' | 'spf', detail: string) =>
    children(auth, kind).map((a) => ({
      domain: lower(textAt(a, 'domain')),
      result: lower(textAt(a, 'result')),
      detail: cut(textAt(a, detail)),
    }));
  const identifiers = child(r, 'identifiers');
  return {
    sourceIp: ip.toLowerCase(),
    count: Number(countText),
    disposition: lower(textAt(evaluated, 'disposition')) || 'none',
    dkim: lower(textAt(evaluated, 'dkim')) || 'fail',
    spf: lower(textAt(evaluated, 'spf')) || 'fail',
    headerFrom: lower(textAt(identifiers, 'header_from')),
    reasons: children(evaluated, 'reason')
      .map((x) => lower(textAt(x, 'type')))
      .filter(Boolean),
    dkimResults: results('dkim', 'selector'),
    spfResults: results('spf', 'scope'),
  };
}

/** The report in `xml`; throws ReportError (or XmlError) when it is not one. */
export function parseDmarcReport(xml: string): DmarcReport {
  const root = parseXml(xml, XML_LIMITS);
  if (root.name !== 'feedback') {
    throw new ReportError(`the root element is <${cut(root.name)}>, not <feedback>`);
  }
  const meta = child(root, 'report_metadata');
  const range = child(meta, 'date_range');
  const published = child(root, 'policy_published');
  const records = children(root, 'record');
  if (records.length > MAX_RECORDS) {
    throw new ReportError(`the report has ${records.length} records, over ${MAX_RECORDS}`);
  }
  return {
    org: required(root, 'report_metadata', 'org_name'),
    email: cut(textAt(meta, 'email')),
    reportId: required(root, 'report_metadata', 'report_id'),
    begin: seconds(range, 'begin'),
    end: seconds(range, 'end'),
    domain: lower(required(root, 'policy_published', 'domain')),
    policy: lower(textAt(published, 'p')),
    records: records.map((r, n) => readRecord(r, n + 1)),
  };
}
