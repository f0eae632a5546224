/**
 * Reading the JSON bodies of SES v2 (rest-json): each member checked for its
 * type as it is read, and a wrong one named in SES's terms
 * ("Content.Simple.Subject must be an object."), as BadRequestException.
 * `path` is the dotted place of the object being read, "" at the top.
 */
import type { Attachment } from './compose.ts';
import { ApiError } from './errors.ts';

export type Json = Record<string, unknown>;

export function parse(body: Buffer): Json {
  try {
    const v: unknown = JSON.parse(body.toString('utf8') || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  } catch {
    // below
  }
  throw new ApiError('bad-request', 'The request body is not a JSON object.');
}

export function obj(o: Json, name: string, path: string): Json | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw bad(`${path}${name} must be an object`);
  return v as Json;
}

export function str(o: Json, name: string, path: string): string | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`${path}${name} must be a string`);
  return v;
}

export function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw bad(`${what} is required`);
  return v;
}

export function strings(o: Json, name: string, path: string): string[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw bad(`${path}${name} must be a list of strings`);
  }
  return v as string[];
}

export function list(o: Json, name: string, path: string): Json[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((e) => !e || typeof e !== 'object')) {
    throw bad(`${path}${name} must be a list of objects`);
  }
  return v as Json[];
}

export function bad(text: string): ApiError {
  return new ApiError('bad-request', `${text}.`);
}

export function base64(text: string, what: string): Buffer {
  const clean = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) throw bad(`${what} must be base64`);
  return Buffer.from(clean, 'base64');
}

// ---- the shapes SES v2 repeats

/** EmailTags / DefaultEmailTags / ReplacementTags: [{Name, Value}] as name -> values. */
export function emailTags(o: Json, name: string, path: string): Record<string, string[]> {
  const tags: Record<string, string[]> = {};
  const p = `${path}${name}[].`;
  for (const t of list(o, name, path)) {
    const tag = need(str(t, 'Name', p), `${p}Name`);
    tags[tag] = [...(tags[tag] ?? []), need(str(t, 'Value', p), `${p}Value`)];
  }
  return tags;
}

/** Headers / ReplacementHeaders: [{Name, Value}]. */
export function headers(o: Json, name: string, path: string): { name: string; value: string }[] {
  const p = `${path}${name}[].`;
  return list(o, name, path).map((h) => ({
    name: need(str(h, 'Name', p), `${p}Name`),
    value: need(str(h, 'Value', p), `${p}Value`),
  }));
}

export function attachments(o: Json, name: string, path: string): Attachment[] {
  return list(o, name, path).map(attachment);
}

function attachment(a: Json): Attachment {
  const p = 'Attachments[].';
  const encoding = str(a, 'ContentTransferEncoding', p);
  const encodings: Record<string, string> = {
    BASE64: 'base64',
    QUOTED_PRINTABLE: 'quoted-printable',
    SEVEN_BIT: '7bit',
  };
  if (encoding !== undefined && !(encoding in encodings)) {
    throw bad(`${p}ContentTransferEncoding must be BASE64, QUOTED_PRINTABLE or SEVEN_BIT`);
  }
  const disposition = str(a, 'ContentDisposition', p);
  if (disposition !== undefined && disposition !== 'ATTACHMENT' && disposition !== 'INLINE') {
    throw bad(`${p}ContentDisposition must be ATTACHMENT or INLINE`);
  }
  return {
    filename: need(str(a, 'FileName', p), `${p}FileName`),
    content: base64(need(str(a, 'RawContent', p), `${p}RawContent`), `${p}RawContent`),
    contentType: str(a, 'ContentType', p),
    disposition: disposition?.toLowerCase(),
    contentId: str(a, 'ContentId', p),
    transferEncoding: encoding === undefined ? undefined : encodings[encoding],
    description: str(a, 'ContentDescription', p),
  };
}

/** A path label as the SDKs send it, percent-encoded; `what` names it when it does not decode. */
export function pathLabel(text: string, what = 'The name in the path'): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw bad(`${what} is not percent-encoded UTF-8`);
  }
}
