/**
 * Amazon SES API v1 (awsQuery, API version 2010-12-01), as Laravel's `ses`
 * mailer, django-ses, Rails' `:ses` and nodemailer 6 call it
 * (research/ses-api.md §2): form-encoded parameters (lists as
 * `Name.member.N`) in a POST (or the query of a GET), XML replies wrapped in
 * <OpResponse><OpResult>; sending is send.ts's.
 *
 * Actions: SendRawEmail, SendEmail, GetSendQuota, GetAccountSendingEnabled,
 * GetSendStatistics (from the events of the key's mail), ListIdentities,
 * GetIdentityVerificationAttributes, VerifyDomainIdentity and
 * VerifyEmailIdentity (identities.ts: posta's domains are verified by being
 * in its config folder); the templates (the store v2 uses too):
 * CreateTemplate, UpdateTemplate, GetTemplate, DeleteTemplate, ListTemplates,
 * TestRenderTemplate, SendTemplatedEmail and SendBulkTemplatedEmail
 * (statuses per destination, bulk.ts).
 * Errors: <ErrorResponse> with the model's error code (botocore maps its
 * exception classes by that code): MessageRejected, Throttling ("Maximum
 * sending rate exceeded."), InvalidParameterValue, TemplateDoesNotExist,
 * AlreadyExists, InvalidTemplate, InvalidRenderingParameter, and the SigV4
 * codes.
 */
import { createHash } from 'node:crypto';
import { sentLast24Hours } from '../keys/usage.ts';
import { sendStatistics } from '../events/events.ts';
import { compose } from './compose.ts';
import { ApiError } from './errors.ts';
import type { ApiDeps, ApiReply, ApiRequest } from './http.ts';
import { bulkStatus, MAX_BULK_ENTRIES, sendEach } from './bulk.ts';
import {
  BULK_BUDGET,
  compileTemplate,
  readBudget,
  renderedMessage,
  templateData,
  type TemplateContent,
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
} from './templates.ts';

const NS = 'http://ses.amazonaws.com/doc/2010-12-01/';
const XML_TYPE = { 'content-type': 'text/xml' };
/** SES v1 takes messages up to 10 MB (v2 and SMTP: 40 MB). */
export const V1_MAX_SIZE = 10 * 1024 * 1024;

const CODES: Record<string, [number, string]> = {
  rejected: [400, 'MessageRejected'],
  'bad-request': [400, 'InvalidParameterValue'],
  rate: [400, 'Throttling'],
  daily: [400, 'Throttling'],
  'not-found': [400, 'InvalidParameterValue'],
  'not-found:template': [400, 'TemplateDoesNotExist'],
  'bad-request:template': [400, 'InvalidTemplate'],
  'bad-request:template-data': [400, 'InvalidRenderingParameter'],
  exists: [400, 'AlreadyExists'],
  unavailable: [500, 'InternalFailure'],
  'auth:missing': [403, 'MissingAuthenticationToken'],
  'auth:incomplete': [400, 'IncompleteSignature'],
  'auth:unknown-key': [403, 'InvalidClientTokenId'],
  'auth:expired': [403, 'SignatureDoesNotMatch'],
  'auth:mismatch': [403, 'SignatureDoesNotMatch'],
};

/** Text as XML character data; CR as a reference too, which a parser would otherwise turn into LF. */
export function xml(text: string): string {
  return text.replace(/[<>&"'\r]/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function v1Error(err: ApiError, requestId: string): ApiReply {
  const [status, code] = CODES[`${err.kind}:${err.detail}`] ??
    CODES[err.kind] ?? [500, 'InternalFailure'];
  const type = status >= 500 ? 'Receiver' : 'Sender';
  return {
    status,
    headers: XML_TYPE,
    body:
      `<ErrorResponse xmlns="${NS}">\n  <Error>\n    <Type>${type}</Type>\n    <Code>${code}</Code>\n` +
      `    <Message>${xml(err.message)}</Message>\n  </Error>\n  <RequestId>${requestId}</RequestId>\n</ErrorResponse>\n`,
  };
}

function ok(action: string, result: string, requestId: string): ApiReply {
  return {
    status: 200,
    headers: XML_TYPE,
    body:
      `<${action}Response xmlns="${NS}">\n  <${action}Result>${result}</${action}Result>\n` +
      `  <ResponseMetadata>\n    <RequestId>${requestId}</RequestId>\n  </ResponseMetadata>\n</${action}Response>\n`,
  };
}

/** The parameters: the form body of a POST, else the query. */
function params(req: ApiRequest): URLSearchParams {
  return req.method === 'POST' ? new URLSearchParams(req.body.toString('utf8')) : req.query;
}

/** Name.member.1, Name.member.2, ... in order. */
function members(p: URLSearchParams, name: string): string[] {
  const out: string[] = [];
  for (let i = 1; p.has(`${name}.member.${i}`); i++) out.push(p.get(`${name}.member.${i}`) ?? '');
  return out;
}

function need(p: URLSearchParams, name: string): string {
  const v = p.get(name);
  if (v === null || v === '') throw new ApiError('bad-request', `${name} is required.`);
  return v;
}

/** `name`.member.N.Name / .Value as name -> values. */
function tagList(p: URLSearchParams, name: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 1; p.has(`${name}.member.${i}.Name`); i++) {
    const tag = p.get(`${name}.member.${i}.Name`) ?? '';
    out[tag] = [...(out[tag] ?? []), p.get(`${name}.member.${i}.Value`) ?? ''];
  }
  return out;
}

/** The message tags: `name` (Tags) and the configuration set, as the tag SES makes of it. */
function tags(p: URLSearchParams, name = 'Tags'): Record<string, string[]> {
  const out = tagList(p, name);
  const set = p.get('ConfigurationSetName');
  if (set) out['ses:configuration-set'] = [set];
  return out;
}

export async function sesV1(req: ApiRequest, deps: ApiDeps, requestId: string): Promise<ApiReply> {
  const p = params(req);
  const action = p.get('Action') ?? '';
  switch (action) {
    case 'SendRawEmail': {
      const data = need(p, 'RawMessage.Data').replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data)) {
        throw new ApiError('bad-request', 'RawMessage.Data must be base64.');
      }
      const destinations = members(p, 'Destinations');
      const { messageId } = await sendMessage(deps, {
        key: req.key,
        raw: Buffer.from(data, 'base64'),
        from: p.get('Source') || undefined,
        destinations: destinations.length ? destinations : undefined,
        tags: tags(p),
        clientIp: req.clientIp,
        protocol: req.protocol,
        maxSize: V1_MAX_SIZE,
      });
      return ok(action, `<MessageId>${messageId}</MessageId>`, requestId);
    }
    case 'SendEmail': {
      const source = need(p, 'Source');
      const dest = destination(p, 'Destination');
      const raw = await compose({
        from: source,
        to: dest.to,
        cc: dest.cc,
        replyTo: members(p, 'ReplyToAddresses'),
        subject: need(p, 'Message.Subject.Data'),
        text: p.get('Message.Body.Text.Data') ?? undefined,
        html: p.get('Message.Body.Html.Data') ?? undefined,
      });
      const messageId = await send(req, deps, p, raw, dest.all, tags(p));
      return ok(action, `<MessageId>${messageId}</MessageId>`, requestId);
    }
    case 'GetSendQuota': {
      const sent = sentLast24Hours(deps.spool.db, req.key.id);
      return ok(
        action,
        `<Max24HourSend>${req.key.daily.toFixed(1)}</Max24HourSend><MaxSendRate>${req.key.rate.toFixed(1)}</MaxSendRate><SentLast24Hours>${sent.toFixed(1)}</SentLast24Hours>`,
        requestId,
      );
    }
    case 'GetAccountSendingEnabled':
      return ok(action, '<Enabled>true</Enabled>', requestId);
    case 'GetSendStatistics': {
      const points = sendStatistics(deps.spool.db, req.key.id)
        .map(
          (d) =>
            `<member><Timestamp>${new Date(d.timestamp).toISOString()}</Timestamp><DeliveryAttempts>${d.deliveryAttempts}</DeliveryAttempts><Bounces>${d.bounces}</Bounces><Complaints>${d.complaints}</Complaints><Rejects>${d.rejects}</Rejects></member>`,
        )
        .join('');
      return ok(action, `<SendDataPoints>${points}</SendDataPoints>`, requestId);
    }
    case 'ListIdentities': {
      // posta's identities are domains; addresses of them need no listing
      const names =
        p.get('IdentityType') === 'EmailAddress' ? [] : deps.identities.domains(req.key);
      const list = names.map((n) => `<member>${xml(n)}</member>`).join('');
      return ok(action, `<Identities>${list}</Identities>`, requestId);
    }
    case 'GetIdentityVerificationAttributes': {
      const entries = [];
      for (const name of members(p, 'Identities')) {
        const i = await deps.identities.get(req.key, name);
        if (!i) continue;
        entries.push(
          `<entry><key>${xml(name)}</key><value><VerificationStatus>Success</VerificationStatus>${i.type === 'DOMAIN' ? `<VerificationToken>${xml(verificationToken(i.name))}</VerificationToken>` : ''}</value></entry>`,
        );
      }
      return ok(
        action,
        `<VerificationAttributes>${entries.join('')}</VerificationAttributes>`,
        requestId,
      );
    }
    case 'VerifyDomainIdentity': {
      const domain = need(p, 'Domain');
      const i = await deps.identities.get(req.key, domain);
      if (!i || i.type !== 'DOMAIN') throw notOurs(domain);
      return ok(
        action,
        `<VerificationToken>${xml(verificationToken(i.name))}</VerificationToken>`,
        requestId,
      );
    }
    case 'VerifyEmailIdentity': {
      const address = need(p, 'EmailAddress');
      if (!(await deps.identities.get(req.key, address))) throw notOurs(address);
      return ok(action, '', requestId);
    }
    default:
      return (
        (await templateAction(action, p, req, deps, requestId)) ?? invalidAction(action, requestId)
      );
  }
}

/** posta has no verification mail or TXT token: a name is verified by being in the config folder. */
function notOurs(name: string): ApiError {
  return new ApiError(
    'bad-request',
    `${name} is not a domain this key may send from; add the domain to posta with \`posta init DOMAIN\` and to the key with \`posta key create --domain DOMAIN\`.`,
  );
}

/** A stable stand-in for SES's TXT verification token: nothing needs publishing for posta. */
function verificationToken(domain: string): string {
  return createHash('sha256').update(`posta:${domain}`).digest('base64');
}

// ---- templates (templates.ts, render.ts): the same store as SES v2's

/** Template.TemplateName, Template.SubjectPart, ... of CreateTemplate and UpdateTemplate. */
function templateParam(p: URLSearchParams): { name: string; content: TemplateContent } {
  const part = (n: string) => p.get(`Template.${n}`) ?? undefined;
  return {
    name: need(p, 'Template.TemplateName'),
    content: { subject: part('SubjectPart'), text: part('TextPart'), html: part('HtmlPart') },
  };
}

/** Template, else the name in TemplateArn. */
function templateName(p: URLSearchParams): string {
  const arn = p.get('TemplateArn');
  return p.get('Template') || (arn ? nameFromArn(arn, 'TemplateArn') : need(p, 'Template'));
}

function element(name: string, value: string | undefined): string {
  return value === undefined ? '' : `<${name}>${xml(value)}</${name}>`;
}

async function templateAction(
  action: string,
  p: URLSearchParams,
  req: ApiRequest,
  deps: ApiDeps,
  requestId: string,
): Promise<ApiReply | null> {
  const db = templateScope(deps.spool.db, req.key);
  switch (action) {
    case 'CreateTemplate': {
      const t = templateParam(p);
      await createTemplate(db, t.name, t.content);
      return ok(action, '', requestId);
    }
    case 'UpdateTemplate': {
      const t = templateParam(p);
      await updateTemplate(db, t.name, t.content);
      return ok(action, '', requestId);
    }
    case 'GetTemplate': {
      const t = getTemplate(db, need(p, 'TemplateName'));
      const parts =
        element('TemplateName', t.name) +
        element('SubjectPart', t.subject) +
        element('TextPart', t.text) +
        element('HtmlPart', t.html);
      return ok(action, `<Template>${parts}</Template>`, requestId);
    }
    case 'DeleteTemplate':
      // SES v1 answers success for a template that is not there
      deleteTemplate(db, need(p, 'TemplateName'));
      return ok(action, '', requestId);
    case 'ListTemplates': {
      // 10 by default; above 100 is 100 (the SES v1 reference)
      const max = p.get('MaxItems');
      const size = max === null ? 10 : Math.min(Number(max), 100);
      if (!Number.isInteger(size) || size < 1) {
        throw new ApiError('bad-request', 'MaxItems must be a whole number from 1 to 100.');
      }
      const page = listTemplates(db, p.get('NextToken') || undefined, size);
      const items = page.templates
        .map(
          (t) =>
            `<member>${element('Name', t.name)}${element('CreatedTimestamp', new Date(t.createdAt).toISOString())}</member>`,
        )
        .join('');
      return ok(
        action,
        `<TemplatesMetadata>${items}</TemplatesMetadata>${element('NextToken', page.next)}`,
        requestId,
      );
    }
    case 'TestRenderTemplate': {
      const t = getTemplate(db, need(p, 'TemplateName'));
      const data = templateData(need(p, 'TemplateData'), 'TemplateData');
      return ok(action, element('RenderedTemplate', await renderedMessage(t, data)), requestId);
    }
    case 'SendTemplatedEmail': {
      const source = need(p, 'Source');
      const template = await compileTemplate(getTemplate(db, templateName(p)));
      const r = template.render(templateData(need(p, 'TemplateData'), 'TemplateData'));
      const dest = destination(p, 'Destination');
      const raw = await compose({
        from: source,
        to: dest.to,
        cc: dest.cc,
        replyTo: members(p, 'ReplyToAddresses'),
        subject: r.subject ?? '',
        text: r.text,
        html: r.html,
      });
      const messageId = await send(req, deps, p, raw, dest.all, tags(p));
      return ok(action, `<MessageId>${messageId}</MessageId>`, requestId);
    }
    case 'SendBulkTemplatedEmail':
      return ok(action, await sendBulk(p, req, deps), requestId);
    default:
      return null;
  }
}

/** `name`.ToAddresses.member.N, CcAddresses, BccAddresses. */
function destination(p: URLSearchParams, name: string) {
  const to = members(p, `${name}.ToAddresses`);
  const cc = members(p, `${name}.CcAddresses`);
  return { to, cc, all: [...to, ...cc, ...members(p, `${name}.BccAddresses`)] };
}

/** A composed message from Source (ReturnPath as the envelope sender when given). */
async function send(
  req: ApiRequest,
  deps: ApiDeps,
  p: URLSearchParams,
  raw: Buffer,
  destinations: string[],
  messageTags: Record<string, string[]>,
): Promise<string> {
  const { messageId } = await sendMessage(deps, {
    key: req.key,
    raw,
    from: p.get('ReturnPath') || need(p, 'Source'),
    destinations,
    tags: messageTags,
    clientIp: req.clientIp,
    protocol: req.protocol,
    maxSize: V1_MAX_SIZE,
  });
  return messageId;
}

/** SendBulkTemplatedEmail: Destinations.member.N.{Destination, ReplacementTemplateData, ReplacementTags} (bulk.ts). */
async function sendBulk(p: URLSearchParams, req: ApiRequest, deps: ApiDeps): Promise<string> {
  const source = need(p, 'Source');
  const template = await compileTemplate(
    getTemplate(templateScope(deps.spool.db, req.key), templateName(p)),
  );
  const defaults = templateData(need(p, 'DefaultTemplateData'), 'DefaultTemplateData');
  const entries: string[] = [];
  const given = (prefix: string) => [...p.keys()].some((k) => k.startsWith(prefix));
  for (let i = 1; given(`Destinations.member.${i}.`); i++)
    entries.push(`Destinations.member.${i}.`);
  if (entries.length === 0 || entries.length > MAX_BULK_ENTRIES) {
    throw new ApiError('bad-request', `Destinations must have 1 to ${MAX_BULK_ENTRIES} members.`);
  }
  const replyTo = members(p, 'ReplyToAddresses');
  const budget = readBudget(BULK_BUDGET);
  const results = await sendEach(
    entries,
    async (e) => {
      const replacement = p.get(`${e}ReplacementTemplateData`) ?? undefined;
      const data = {
        ...defaults,
        ...templateData(replacement, `${e}ReplacementTemplateData`),
      };
      const r = template.render(data, budget);
      const dest = destination(p, `${e}Destination`);
      const raw = await compose({
        from: source,
        to: dest.to,
        cc: dest.cc,
        replyTo,
        subject: r.subject ?? '',
        text: r.text,
        html: r.html,
      });
      const own = { ...tags(p, 'DefaultTags'), ...tagList(p, `${e}ReplacementTags`) };
      return send(req, deps, p, raw, dest.all, own);
    },
    deps.log,
  );
  const items = results.map((r) => {
    const s = bulkStatus(r, 'v1');
    return `<member>${element('Status', s.status)}${element('Error', s.error)}${element('MessageId', s.messageId)}</member>`;
  });
  return `<Status>${items.join('')}</Status>`;
}

function invalidAction(action: string, requestId: string): ApiReply {
  const r = v1Error(
    new ApiError(
      'bad-request',
      `The action ${action || '(none)'} is not valid for this web service.`,
    ),
    requestId,
  );
  return {
    ...r,
    body: r.body.replace('<Code>InvalidParameterValue</Code>', '<Code>InvalidAction</Code>'),
  };
}
