/**
 * The template store of the SES APIs: named email templates (a subject, a
 * text part, an html part, each optional) that SendEmail, SendBulkEmail and
 * SendTemplatedEmail render with TemplateData (render.ts). SES keeps them
 * per account and region; posta keeps them per access key (one key cannot
 * read or change another's, which may sign for other domains), and v1 and
 * v2 see the same templates.
 *
 * Names as SES has them: 1 to 64 letters, digits, "_" and "-". A template
 * is checked when stored (render.ts checkTemplate), so a stored one
 * compiles. Lists are ordered by name; a NextToken is the last name given,
 * in base64url.
 *
 * Table email_templates (queue.db): owner (the key id), name, subject,
 * text, html, created_at, updated_at (Unix milliseconds).
 */
import { prepared, type Db } from '../db/db.ts';
import type { ApiKey } from '../keys/keys.ts';

/** Whose templates: the store and the key they belong to. */
export interface TemplateScope {
  db: Db;
  owner: string;
}

export function templateScope(db: Db, key: ApiKey): TemplateScope {
  return { db, owner: key.id };
}
import { ApiError } from './errors.ts';
import { checkTemplate, type TemplateContent } from './render.ts';

export interface EmailTemplate extends TemplateContent {
  name: string;
  createdAt: number;
  updatedAt: number;
}

interface Row {
  name: string;
  subject: string | null;
  text: string | null;
  html: string | null;
  created_at: number;
  updated_at: number;
}

function fromRow(r: Row): EmailTemplate {
  return {
    name: r.name,
    subject: r.subject ?? undefined,
    text: r.text ?? undefined,
    html: r.html ?? undefined,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export function checkName(name: string): void {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) {
    throw new ApiError(
      'bad-request',
      `Invalid template name ${JSON.stringify(name)}: use 1 to 64 letters, digits, "_" and "-".`,
    );
  }
}

/** The name at the end of a template's ARN (arn:aws:ses:REGION:ACCOUNT:template/NAME). */
export function nameFromArn(arn: string, what: string): string {
  const at = arn.indexOf(':template/');
  if (at < 0) throw new ApiError('bad-request', `${what} must be the ARN of a template.`);
  return arn.slice(at + ':template/'.length);
}

function missing(name: string): ApiError {
  return new ApiError('not-found', `Template ${name} does not exist.`, 'template');
}

export async function createTemplate(
  s: TemplateScope,
  name: string,
  c: TemplateContent,
  now = Date.now(),
): Promise<void> {
  checkName(name);
  await checkTemplate(c);
  const r = prepared(
    s.db,
    `INSERT INTO email_templates (owner, name, subject, text, html, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (owner, name) DO NOTHING`,
  ).run(s.owner, name, c.subject ?? null, c.text ?? null, c.html ?? null, now, now);
  if (r.changes === 0) {
    throw new ApiError('exists', `Template ${name} already exists.`, 'template');
  }
}

export async function updateTemplate(
  s: TemplateScope,
  name: string,
  c: TemplateContent,
  now = Date.now(),
): Promise<void> {
  checkName(name);
  await checkTemplate(c);
  const r = prepared(
    s.db,
    'UPDATE email_templates SET subject = ?, text = ?, html = ?, updated_at = ? WHERE owner = ? AND name = ?',
  ).run(c.subject ?? null, c.text ?? null, c.html ?? null, now, s.owner, name);
  if (r.changes === 0) throw missing(name);
}

/** The template, or a not-found ApiError (v2 NotFoundException, v1 TemplateDoesNotExist). */
export function getTemplate(s: TemplateScope, name: string): EmailTemplate {
  const r = prepared(s.db, 'SELECT * FROM email_templates WHERE owner = ? AND name = ?').get(
    s.owner,
    name,
  ) as Row | undefined;
  if (!r) throw missing(name);
  return fromRow(r);
}

/** False when there was no such template. */
export function deleteTemplate(s: TemplateScope, name: string): boolean {
  return (
    prepared(s.db, 'DELETE FROM email_templates WHERE owner = ? AND name = ?').run(s.owner, name)
      .changes > 0
  );
}

/** One page of templates by name, after the one `token` names; `next` when there are more. */
export function listTemplates(
  s: TemplateScope,
  token: string | undefined,
  size: number,
): { templates: EmailTemplate[]; next: string | undefined } {
  let after = '';
  if (token !== undefined) {
    after = Buffer.from(token, 'base64url').toString('utf8');
    if (
      !/^[A-Za-z0-9_-]{1,64}$/.test(after) ||
      Buffer.from(after).toString('base64url') !== token
    ) {
      throw new ApiError('bad-request', 'The NextToken is not valid.', 'next-token');
    }
  }
  const rows = prepared(
    s.db,
    'SELECT * FROM email_templates WHERE owner = ? AND name > ? ORDER BY name LIMIT ?',
  ).all(s.owner, after, size + 1) as unknown as Row[];
  const templates = rows.slice(0, size).map(fromRow);
  const last = templates.at(-1);
  return {
    templates,
    next: rows.length > size && last ? Buffer.from(last.name).toString('base64url') : undefined,
  };
}
