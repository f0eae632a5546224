/**
 * The sandbox's captured mail (`posta dev` writes each delivered message to
 * its capture folder as QUEUEID.eml, delivery/capture.ts), read for the
 * dashboard as Mailpit shows mail: parsed with mailparser (the text, the
 * HTML, the attachments, the header fields) and each DKIM signature checked
 * by mailauth against the keys of the config folder, the records `posta dns`
 * prints, since the sandbox has no DNS to publish them in.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Directory } from '../../domains/directory.ts';
import { dkimTxt } from '../../dkim/keys.ts';

/** The newest messages the list shows. */
const LIST_MAX = 200;

export interface CapturedSummary {
  id: string;
  at: number;
  from: string;
  to: string;
  subject: string;
  size: number;
}

export interface CapturedAttachment {
  filename: string;
  contentType: string;
  size: number;
  content: Buffer;
}

export interface CapturedMessage extends CapturedSummary {
  headers: { name: string; value: string }[];
  text: string | null;
  html: string | null;
  attachments: CapturedAttachment[];
  dkim: { domain: string; selector: string; algorithm: string; result: string; comment: string }[];
  raw: Buffer;
}

const ID = /^[0-9a-z]{1,40}$/;

async function parse(raw: Buffer) {
  const { simpleParser } = await import('mailparser');
  return simpleParser(raw, { skipTextToHtml: true, skipImageLinks: true });
}

const addressText = (a: unknown): string => {
  if (!a) return '';
  const list = Array.isArray(a) ? a : [a];
  return list.map((x: { text?: string }) => x.text ?? '').join(', ');
};

/** The newest captured messages first; none when the folder is not there yet. */
export async function listCaptured(dir: string, q = ''): Promise<CapturedSummary[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const files = await Promise.all(
    names
      .filter((n) => n.endsWith('.eml') && ID.test(n.slice(0, -4)))
      .map(async (n) => ({ n, s: await stat(join(dir, n)).catch(() => null) })),
  );
  const newest = files
    .filter((f) => f.s !== null)
    .sort((a, b) => (b.s?.mtimeMs ?? 0) - (a.s?.mtimeMs ?? 0))
    .slice(0, LIST_MAX);
  const out: CapturedSummary[] = [];
  for (const f of newest) {
    const m = await parse(await readFile(join(dir, f.n)));
    const summary = {
      id: f.n.slice(0, -4),
      at: f.s?.mtimeMs ?? 0,
      from: addressText(m.from),
      to: addressText(m.to),
      subject: m.subject ?? '',
      size: f.s?.size ?? 0,
    };
    const text = q.toLowerCase();
    if (
      !text ||
      [summary.from, summary.to, summary.subject].some((v) => v.toLowerCase().includes(text))
    ) {
      out.push(summary);
    }
  }
  return out;
}

/** One captured message, parsed and its signatures checked; null when there is none. */
export async function readCaptured(
  dir: string,
  id: string,
  directory: Pick<Directory, 'names' | 'allKeys'>,
): Promise<CapturedMessage | null> {
  if (!ID.test(id)) return null;
  const path = join(dir, `${id}.eml`);
  const raw = await readFile(path).catch(() => null);
  if (!raw) return null;
  const s = await stat(path);
  const m = await parse(raw);
  const { dkimVerify } = await import('mailauth');
  // the config folder's keys as DNS would give them once published
  const resolver = (name: string, rrtype: string) => {
    const hit = /^([^.]+)\._domainkey\.(.+)$/.exec(name.toLowerCase());
    const key =
      rrtype === 'TXT' && hit
        ? directory.allKeys(hit[2] ?? '').find((k) => k.selector === hit[1])
        : undefined;
    if (!key)
      return Promise.reject(
        Object.assign(new Error(`no ${rrtype} for ${name}`), { code: 'ENOTFOUND' }),
      );
    return Promise.resolve([[dkimTxt(key)]]);
  };
  const verified = await dkimVerify(raw, { resolver });
  return {
    id,
    at: s.mtimeMs,
    from: addressText(m.from),
    to: addressText(m.to),
    subject: m.subject ?? '',
    size: s.size,
    headers: m.headerLines.map((h) => {
      const colon = h.line.indexOf(':');
      return { name: h.line.slice(0, colon), value: h.line.slice(colon + 1).trim() };
    }),
    text: m.text ?? null,
    html: typeof m.html === 'string' ? m.html : null,
    attachments: m.attachments.map((a) => ({
      filename: a.filename ?? 'attachment',
      contentType: a.contentType,
      size: a.size,
      content: a.content,
    })),
    dkim: verified.results.map((r) => ({
      domain: r.signingDomain ?? '',
      selector: r.selector ?? '',
      algorithm: r.algo ?? '',
      result: r.status.result,
      comment: r.status.comment ?? '',
    })),
    raw,
  };
}
