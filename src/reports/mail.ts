/**
 * Report mail: a DMARC aggregate report (RFC 7489 §7.2.1.1: Subject
 * "Report Domain: D Submitter: S Report-ID: I", the XML as a .xml, .xml.gz
 * or .zip attachment, or as the whole body) or an SMTP TLS report (RFC 8460
 * §5.3: TLS-Report-Domain and TLS-Report-Submitter fields, a
 * multipart/report; report-type=tlsrpt with an application/tlsrpt+gzip or
 * +json part) that arrived on port 25 for the rua address `posta dns`
 * publishes (postmaster@ a domain of ours).
 *
 * mailsplit splits the MIME structure; each candidate part's body is kept
 * up to the attachment bound (unpack.ts) and decoded here; at most
 * MAX_DOCUMENTS per message are read. A report is stored only for one of
 * our domains (or a subdomain), with who sent it and whether that sender
 * was verified; what does not parse is logged and dropped. The mail itself
 * is queued before any of this and forwarded like any other.
 */
import type { Readable } from 'node:stream';
import { Headers, Splitter } from 'mailsplit';
import { UNPACK_LIMITS } from './unpack.ts';

export type ReportKind = 'dmarc' | 'tlsrpt';

const MAX_DOCUMENTS = 2;
/** base64 makes 4 bytes of 3, plus line breaks. */
const MAX_ENCODED = Math.ceil(UNPACK_LIMITS.attachment * 1.4) + 4096;

const DMARC_TYPES = new Set([
  'application/gzip',
  'application/x-gzip',
  'application/zip',
  'application/x-zip-compressed',
  'application/x-zip',
  'text/xml',
  'application/xml',
  'application/octet-stream',
]);
const TLS_TYPES = new Set([
  'application/tlsrpt+gzip',
  'application/tlsrpt+json',
  'application/gzip',
  'application/json',
  'application/octet-stream',
]);

/** Which report the header section announces, or null for any other mail. */
export function reportKind(head: Buffer): ReportKind | null {
  const text = head.toString('latin1');
  // most mail is no report: a plain search before any parsing
  if (!/tls-report-domain|tlsrpt|report[ -]?domain/i.test(text)) return null;
  const fields = new Headers(head);
  const value = (name: string) => fields.get(name).join(' ').replace(/\r?\n/g, ' ');
  // RFC 8460 §5.3: the fields, or the report type
  if (fields.hasHeader('tls-report-domain')) return 'tlsrpt';
  if (/report-type\s*=\s*"?tlsrpt\b/i.test(value('content-type'))) return 'tlsrpt';
  // RFC 7489 §7.2.1.1: "Report Domain: ... Submitter: ..."
  const subject = value('subject');
  if (/\breport[ -]?domain:/i.test(subject) && /\bsubmitter:/i.test(subject)) return 'dmarc';
  return null;
}

export interface Attachment {
  contentType: string;
  filename: string;
  /** Decoded; empty when it was over the bound. */
  data: Buffer;
  tooLarge: boolean;
}

/** A quoted-printable body (RFC 2045 §6.7) to bytes. */
function fromQuotedPrintable(raw: Buffer): Buffer {
  const text = raw.toString('latin1').replace(/=\r?\n/g, '');
  return Buffer.from(
    text.replace(/=([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  );
}

/** The parts that may hold a report of `kind`, decoded, at most MAX_DOCUMENTS. */
export async function reportAttachments(
  message: Readable,
  kind: ReportKind,
): Promise<Attachment[]> {
  const types = kind === 'dmarc' ? DMARC_TYPES : TLS_TYPES;
  const names = kind === 'dmarc' ? /\.(xml|xml\.gz|gz|zip)$/i : /\.(json|json\.gz|gz)$/i;
  const parts: (Attachment & { encoding: string; chunks: Buffer[]; size: number })[] = [];
  let current: (typeof parts)[number] | undefined;
  const splitter = new Splitter({ ignoreEmbedded: true, maxHeadSize: 64 * 1024 });
  splitter.on('data', (d: SplitterNode) => {
    if (d.type === 'node') {
      current = undefined;
      const contentType = String(d.contentType || '');
      const filename = String(d.filename || '');
      if (d.multipart || parts.length >= MAX_DOCUMENTS) return;
      if (!types.has(contentType) && !names.test(filename)) return;
      current = {
        contentType,
        filename,
        data: Buffer.alloc(0),
        tooLarge: false,
        encoding: String(d.encoding || '').toLowerCase(),
        chunks: [],
        size: 0,
      };
      parts.push(current);
    } else if (d.type === 'body' && current && d.value && !current.tooLarge) {
      current.size += d.value.length;
      if (current.size > MAX_ENCODED) {
        current.tooLarge = true;
        current.chunks = [];
      } else {
        current.chunks.push(d.value);
      }
    }
  });
  await new Promise<void>((resolve, reject) => {
    splitter.on('end', resolve).on('error', reject);
    message.on('error', reject).pipe(splitter);
  });
  return parts.map((p) => {
    const raw = Buffer.concat(p.chunks);
    const data =
      p.encoding === 'base64'
        ? Buffer.from(raw.toString('latin1'), 'base64')
        : p.encoding === 'quoted-printable'
          ? fromQuotedPrintable(raw)
          : raw;
    return { contentType: p.contentType, filename: p.filename, data, tooLarge: p.tooLarge };
  });
}

interface SplitterNode {
  type: 'node' | 'data' | 'body';
  value?: Buffer;
  contentType?: string | false;
  encoding?: string | false;
  filename?: string | false;
  multipart?: string | false;
}
