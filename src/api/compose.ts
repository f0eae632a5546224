/**
 * A message from structured fields (SES v2 Simple and Template content, SES
 * v1 SendEmail, Resend), built by nodemailer's MailComposer: the MIME
 * structure (text and html as multipart/alternative, attachments, inline
 * parts by Content-ID), encoded words and line wrapping are its work. Bcc
 * recipients never reach it: they travel only in the envelope.
 */
import MailComposer from 'nodemailer/lib/mail-composer';
import { ApiError } from './errors.ts';

export interface Attachment {
  filename: string;
  content: Buffer;
  contentType?: string | undefined;
  /** "attachment" (the default) or "inline". */
  disposition?: string | undefined;
  contentId?: string | undefined;
  /** "base64", "quoted-printable" or "7bit"; MailComposer picks when absent. */
  transferEncoding?: string | undefined;
  description?: string | undefined;
}

export interface Composed {
  /** Absent only in a rendering that is not sent (TestRenderEmailTemplate). */
  from?: string;
  to?: string[];
  cc?: string[];
  replyTo?: string[];
  subject: string;
  text?: string | undefined;
  html?: string | undefined;
  headers?: { name: string; value: string }[];
  attachments?: Attachment[];
}

/** Header fields the structured APIs set themselves, which a Headers entry may not override. */
const RESERVED = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'subject',
  'reply-to',
  'content-type',
  'mime-version',
  'content-transfer-encoding',
]);

export async function compose(c: Composed): Promise<Buffer> {
  if (c.text === undefined && c.html === undefined) {
    throw new ApiError('bad-request', 'The message needs a body: Text, Html or both.');
  }
  const headers: [string, string][] = [];
  for (const h of c.headers ?? []) {
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(h.name) || /[\r\n]/.test(h.value)) {
      throw new ApiError('bad-request', `Invalid header: ${JSON.stringify(h.name)}.`);
    }
    if (RESERVED.has(h.name.toLowerCase())) {
      throw new ApiError(
        'bad-request',
        `The header ${h.name} cannot be set in Headers; use its own field.`,
      );
    }
    headers.push([h.name, h.value]);
  }
  const composer = new MailComposer({
    from: c.from,
    to: c.to,
    cc: c.cc,
    replyTo: c.replyTo,
    subject: c.subject,
    text: c.text,
    html: c.html,
    headers: headers.map(([key, value]) => ({ key, value })),
    attachments: (c.attachments ?? []).map((a) => ({
      filename: a.filename,
      content: a.content,
      contentType: a.contentType,
      contentDisposition: a.disposition,
      cid: a.contentId,
      contentTransferEncoding: a.transferEncoding,
      headers: a.description ? { 'Content-Description': a.description } : undefined,
    })),
    // never read files or URLs named in the request
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return composer.compile().build();
}
