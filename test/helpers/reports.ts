/**
 * DMARC aggregate and TLS-RPT report mails as Google and Microsoft send
 * them, built from the readable fixtures in test/fixtures/reports/ and
 * compressed here (no binary blobs in the repository): Google's DMARC
 * report as a .zip, Microsoft's as a .xml.gz (RFC 7489 §7.2.1.1), and the
 * TLS reports as multipart/report; report-type=tlsrpt with an
 * application/tlsrpt+gzip part (RFC 8460 §5.3).
 */
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';

const FIXTURES = new URL('../fixtures/reports/', import.meta.url);

export const fixture = (name: string) => readFileSync(new URL(name, FIXTURES), 'utf8');

const base64 = (b: Buffer | Uint8Array) =>
  (
    Buffer.from(b)
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\r\n');

export function zipOf(name: string, content: string | Buffer): Buffer {
  return Buffer.from(zipSync({ [name]: Buffer.from(content) }));
}

interface ReportMail {
  from: string;
  to?: string;
  subject: string;
  /** Extra header fields, each a line without CRLF. */
  fields?: string[];
  type: 'multipart/mixed' | 'multipart/report; report-type="tlsrpt"';
  text: string;
  attachment: { type: string; name: string; data: Buffer };
}

/** A report mail; CRLF line ends, base64 attachment, as the big providers send. */
export function reportMail(m: ReportMail): Buffer {
  const boundary = '000000000000a1b2c3d4e5f60718';
  const lines = [
    `From: ${m.from}`,
    `To: ${m.to ?? 'postmaster@example.test'}`,
    `Subject: ${m.subject}`,
    'Date: Sun, 02 Aug 2026 07:04:11 +0000',
    `Message-ID: <${boundary}.${m.attachment.name.length}@${m.from.split('@')[1] ?? 'x'}>`,
    ...(m.fields ?? []),
    'MIME-Version: 1.0',
    `Content-Type: ${m.type}; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset="UTF-8"',
    'Content-Transfer-Encoding: 7bit',
    '',
    m.text,
    `--${boundary}`,
    `Content-Type: ${m.attachment.type}; name="${m.attachment.name}"`,
    `Content-Disposition: attachment; filename="${m.attachment.name}"`,
    'Content-Transfer-Encoding: base64',
    '',
    base64(m.attachment.data),
    `--${boundary}--`,
    '',
  ];
  return Buffer.from(lines.join('\r\n'));
}

/** Google's DMARC aggregate report: a zip of the XML. */
export function googleDmarc(xml = fixture('google-dmarc.xml'), to?: string): Buffer {
  const name = 'google.com!example.test!1785542400!1785628799.zip';
  return reportMail({
    from: 'noreply-dmarc-support@google.com',
    to,
    subject: 'Report domain: example.test Submitter: google.com Report-ID: 13498740294861293014',
    type: 'multipart/mixed',
    text: '',
    attachment: {
      type: 'application/zip',
      name,
      data: zipOf(name.replace(/\.zip$/, '.xml'), xml),
    },
  });
}

/** Microsoft's (Outlook.com, Microsoft 365): the XML gzip'd. */
export function microsoftDmarc(xml = fixture('microsoft-dmarc.xml')): Buffer {
  return reportMail({
    from: 'dmarcreport@microsoft.com',
    subject:
      'Report Domain: example.test Submitter: enterprise.protection.outlook.com Report-ID: <9c3b6f0e2a7d4e1b8f5a3c2d1e0f9a8b>',
    type: 'multipart/mixed',
    text: 'This is a DMARC aggregate report from Microsoft Corporation.',
    attachment: {
      type: 'application/gzip',
      name: 'enterprise.protection.outlook.com!example.test!1785542400!1785628800.xml.gz',
      data: gzipSync(xml),
    },
  });
}

/** A TLS report (RFC 8460 §5.3) from `org`'s `submitter`, the JSON gzip'd. */
export function tlsReportMail(
  json: string,
  o: { from: string; submitter: string; type?: string } = {
    from: 'noreply-smtp-tls-reporting@google.com',
    submitter: 'google.com',
  },
): Buffer {
  return reportMail({
    from: o.from,
    subject: `Report Domain: example.test Submitter: ${o.submitter} Report-ID: <2026.08.01T00.00.00Z+example.test@${o.submitter}>`,
    fields: ['TLS-Report-Domain: example.test', `TLS-Report-Submitter: ${o.submitter}`],
    type: 'multipart/report; report-type="tlsrpt"',
    text: `This is an aggregate TLS report from ${o.submitter}`,
    attachment: {
      type: o.type ?? 'application/tlsrpt+gzip',
      name: `${o.submitter}!example.test!1785542400!1785628799!001.json.gz`,
      data: gzipSync(json),
    },
  });
}

export const googleTls = () => tlsReportMail(fixture('google-tlsrpt.json'));
export const microsoftTls = () =>
  tlsReportMail(fixture('microsoft-tlsrpt.json'), {
    from: 'tlsrpt-noreply@microsoft.com',
    submitter: 'microsoft.com',
  });
