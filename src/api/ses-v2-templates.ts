/**
 * The template operations of SES v2 (research/ses-api.md §5), the wire
 * format only: the store is templates.ts, rendering render.ts, sending
 * send.ts.
 *
 * - POST /v2/email/templates: CreateEmailTemplate {TemplateName, TemplateContent{Subject, Text, Html}}
 * - GET /v2/email/templates?NextToken&PageSize: ListEmailTemplates
 * - GET, PUT, DELETE /v2/email/templates/{TemplateName}: Get, Update, DeleteEmailTemplate
 * - POST /v2/email/templates/{TemplateName}/render: TestRenderEmailTemplate
 *   {TemplateData} -> {RenderedTemplate}, the message as MIME text
 * - POST /v2/email/outbound-bulk-emails: SendBulkEmail, one message per
 *   entry (bulk.ts), each entry's ReplacementTemplateData over the
 *   default TemplateData key by key, its ReplacementTags and
 *   ReplacementHeaders over the defaults of the same name
 * - Content.Template of SendEmail: templateMessage()
 *
 * A template is named (TemplateName, or the name at the end of a
 * TemplateArn) or given whole (TemplateContent). Timestamps are epoch
 * seconds, as rest-json has them.
 */
import { bulkStatus, MAX_BULK_ENTRIES, sendEach } from './bulk.ts';
import { compose } from './compose.ts';
import type { ApiDeps, ApiRequest } from './http.ts';
import {
  attachments,
  bad,
  emailTags,
  headers,
  list,
  need,
  obj,
  parse,
  pathLabel,
  str,
  strings,
  type Json,
} from './json.ts';
import {
  BULK_BUDGET,
  compileTemplate,
  readBudget,
  renderedMessage,
  templateData,
  type TemplateContent,
  type TemplateData,
} from './render.ts';
import { sendMessage } from './send.ts';
import {
  createTemplate,
  deleteTemplate,
  getTemplate,
  listTemplates,
  nameFromArn,
  updateTemplate,
  templateScope,
  type TemplateScope,
} from './templates.ts';

/** The answer to a template operation, or null when the request is none of them. */
export async function templateOperation(req: ApiRequest, deps: ApiDeps): Promise<Json | null> {
  const db = templateScope(deps.spool.db, req.key);
  const route = req.route.replace(/\/+$/, '');
  if (route === '/v2/email/outbound-bulk-emails') {
    return req.method === 'POST' ? sendBulkEmail(req, deps) : null;
  }
  if (route === '/v2/email/templates') {
    if (req.method === 'POST') {
      const b = parse(req.body);
      const name = need(str(b, 'TemplateName', ''), 'TemplateName');
      await createTemplate(db, name, content(b));
      return {};
    }
    return req.method === 'GET' ? listTemplatesOp(req, db) : null;
  }
  const m = /^\/v2\/email\/templates\/([^/]+)(\/render)?$/.exec(route);
  if (!m) return null;
  const name = pathLabel(m[1] ?? '');
  if (m[2]) return req.method === 'POST' ? testRender(req, name, db) : null;
  switch (req.method) {
    case 'GET': {
      const t = getTemplate(db, name);
      return {
        TemplateName: t.name,
        TemplateContent: { Subject: t.subject, Text: t.text, Html: t.html },
      };
    }
    case 'PUT':
      await updateTemplate(db, name, content(parse(req.body)));
      return {};
    case 'DELETE':
      if (!deleteTemplate(db, name)) getTemplate(db, name); // throws NotFoundException
      return {};
    default:
      return null;
  }
}

/** TemplateContent {Subject, Text, Html} of a request body (or of a Template). */
function content(o: Json, path = ''): TemplateContent {
  const c = need(obj(o, 'TemplateContent', path), `${path}TemplateContent`);
  const p = `${path}TemplateContent.`;
  return { subject: str(c, 'Subject', p), text: str(c, 'Text', p), html: str(c, 'Html', p) };
}

function listTemplatesOp(req: ApiRequest, db: TemplateScope): Json {
  const sizeText = req.query.get('PageSize');
  const size = sizeText === null ? 10 : Number(sizeText);
  if (!Number.isInteger(size) || size < 1 || size > 100) {
    throw bad('PageSize must be a whole number from 1 to 100');
  }
  const page = listTemplates(db, req.query.get('NextToken') ?? undefined, size);
  return {
    TemplatesMetadata: page.templates.map((t) => ({
      TemplateName: t.name,
      CreatedTimestamp: t.createdAt / 1000,
    })),
    NextToken: page.next,
  };
}

async function testRender(req: ApiRequest, name: string, db: TemplateScope): Promise<Json> {
  const b = parse(req.body);
  const data = templateData(need(str(b, 'TemplateData', ''), 'TemplateData'), 'TemplateData');
  return { RenderedTemplate: await renderedMessage(getTemplate(db, name), data) };
}

/** The template a Template object names or holds (`path` is where it is, "Content.Template."). */
function templateOf(t: Json, path: string, db: TemplateScope): TemplateContent {
  const arn = str(t, 'TemplateArn', path);
  let name = str(t, 'TemplateName', path);
  if (name === undefined && arn !== undefined) name = nameFromArn(arn, `${path}TemplateArn`);
  if (t.TemplateContent !== undefined) {
    if (name !== undefined)
      throw bad(`${path} must name a template or hold TemplateContent, not both`);
    return content(t, path);
  }
  return getTemplate(db, need(name, `${path}TemplateName`));
}

/** The message of SendEmail's Content.Template, rendered with its TemplateData. */
export async function templateMessage(
  t: Json,
  fields: { from: string; to: string[]; cc: string[]; replyTo: string[] },
  db: TemplateScope,
): Promise<Buffer> {
  const path = 'Content.Template.';
  const data = templateData(str(t, 'TemplateData', path), `${path}TemplateData`);
  const r = (await compileTemplate(templateOf(t, path, db))).render(data);
  return compose({
    ...fields,
    subject: r.subject ?? '',
    text: r.text,
    html: r.html,
    headers: headers(t, 'Headers', path),
    attachments: attachments(t, 'Attachments', path),
  });
}

async function sendBulkEmail(req: ApiRequest, deps: ApiDeps): Promise<Json> {
  const b = parse(req.body);
  if (b.EndpointId !== undefined) {
    throw bad('EndpointId (multi-region endpoints) is not supported by posta');
  }
  const from = need(str(b, 'FromEmailAddress', ''), 'FromEmailAddress');
  const feedback = str(b, 'FeedbackForwardingEmailAddress', '');
  const replyTo = strings(b, 'ReplyToAddresses', '');
  const defaultTags = emailTags(b, 'DefaultEmailTags', '');
  const set = str(b, 'ConfigurationSetName', '');
  const content = need(obj(b, 'DefaultContent', ''), 'DefaultContent');
  const path = 'DefaultContent.Template.';
  const t = need(obj(content, 'Template', 'DefaultContent.'), 'DefaultContent.Template');
  const template = await compileTemplate(
    templateOf(t, path, templateScope(deps.spool.db, req.key)),
  );
  const defaults = templateData(str(t, 'TemplateData', path), `${path}TemplateData`);
  const defaultHeaders = headers(t, 'Headers', path);
  const entries = list(b, 'BulkEmailEntries', '');
  if (entries.length === 0 || entries.length > MAX_BULK_ENTRIES) {
    throw bad(`BulkEmailEntries must have 1 to ${MAX_BULK_ENTRIES} entries`);
  }

  const budget = readBudget(BULK_BUDGET);
  const sendEntry = async (e: Json): Promise<string> => {
    const p = 'BulkEmailEntries[].';
    const d = need(obj(e, 'Destination', p), `${p}Destination`);
    const [to, cc, bcc] = ['ToAddresses', 'CcAddresses', 'BccAddresses'].map((n) =>
      strings(d, n, `${p}Destination.`),
    ) as [string[], string[], string[]];
    const replacement = obj(
      obj(e, 'ReplacementEmailContent', p) ?? {},
      'ReplacementTemplate',
      `${p}ReplacementEmailContent.`,
    );
    const dataPath = `${p}ReplacementEmailContent.ReplacementTemplate.ReplacementTemplateData`;
    const data: TemplateData = {
      ...defaults,
      ...templateData(replacement && str(replacement, 'ReplacementTemplateData', ''), dataPath),
    };
    const own = headers(e, 'ReplacementHeaders', p);
    const names = new Set(own.map((h) => h.name.toLowerCase()));
    const r = template.render(data, budget);
    const raw = await compose({
      from,
      to,
      cc,
      replyTo,
      subject: r.subject ?? '',
      text: r.text,
      html: r.html,
      headers: [...defaultHeaders.filter((h) => !names.has(h.name.toLowerCase())), ...own],
    });
    const tags = { ...defaultTags, ...emailTags(e, 'ReplacementTags', p) };
    if (set !== undefined) tags['ses:configuration-set'] = [set];
    const { messageId } = await sendMessage(deps, {
      key: req.key,
      raw,
      from: feedback ?? from,
      destinations: [...to, ...cc, ...bcc],
      tags,
      clientIp: req.clientIp,
      protocol: req.protocol,
    });
    return messageId;
  };
  const results = await sendEach(entries, sendEntry, deps.log);
  return {
    BulkEmailEntryResults: results.map((r) => {
      const s = bulkStatus(r, 'v2');
      return { Status: s.status, Error: s.error, MessageId: s.messageId };
    }),
  };
}
