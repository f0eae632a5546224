/**
 * Amazon SES API v2 (rest-json, API version 2019-09-27) as the SDKs send it
 * (research/ses-api.md §1): the wire format only; sending is send.ts's.
 *
 * - POST /v2/email/outbound-emails: SendEmail with Raw, Simple or Template
 *   content.
 * - GET /v2/email/account: GetAccount, the key's quota in SendQuota.
 * - the suppression list: ses-v2-suppression.ts.
 * - POST /v2/email/list-identities (GET /v2/email/identities in older
 *   models), GET /v2/email/identities/{name}: ListEmailIdentities,
 *   GetEmailIdentity (identities.ts).
 * - the templates and SendBulkEmail: ses-v2-templates.ts.
 *
 * Errors: status, `x-amzn-ErrorType: <Code>` and {"message"} (with
 * "__type"), the shape from which the JS SDK and botocore pick the modeled
 * exception; the codes are SES's, so TooManyRequestsException (429) is
 * retried by the SDKs, and a skewed clock's InvalidSignatureException makes
 * them correct their clock from the Date header and sign again.
 */
import { sentLast24Hours } from '../keys/usage.ts';
import { compose } from './compose.ts';
import { ApiError } from './errors.ts';
import {
  attachments,
  base64,
  bad,
  emailTags,
  headers,
  need,
  obj,
  parse,
  pathLabel,
  str,
  strings,
  type Json,
} from './json.ts';
import type { ApiDeps, ApiReply, ApiRequest } from './http.ts';
import { listTags, sendMessage } from './send.ts';
import { templateScope } from './templates.ts';
import { suppressionOp } from './ses-v2-suppression.ts';
import { templateOperation, templateMessage } from './ses-v2-templates.ts';

const JSON_TYPE = { 'content-type': 'application/json' };

function ok(body: unknown): ApiReply {
  return { status: 200, headers: JSON_TYPE, body: JSON.stringify(body) };
}

/** The code and status each failure has in SES v2. */
const CODES: Record<string, [number, string]> = {
  rejected: [400, 'MessageRejected'],
  'bad-request': [400, 'BadRequestException'],
  rate: [429, 'TooManyRequestsException'],
  daily: [400, 'LimitExceededException'],
  'not-found': [404, 'NotFoundException'],
  'bad-request:next-token': [400, 'InvalidNextTokenException'],
  exists: [400, 'AlreadyExistsException'],
  unavailable: [500, 'InternalServiceErrorException'],
  'auth:missing': [403, 'MissingAuthenticationTokenException'],
  'auth:incomplete': [400, 'IncompleteSignatureException'],
  'auth:unknown-key': [403, 'UnrecognizedClientException'],
  'auth:expired': [403, 'InvalidSignatureException'],
  'auth:mismatch': [403, 'InvalidSignatureException'],
};

export function v2Error(err: ApiError): ApiReply {
  const [status, code] = CODES[`${err.kind}:${err.detail}`] ??
    CODES[err.kind] ?? [500, 'InternalServiceErrorException'];
  return {
    status,
    headers: { ...JSON_TYPE, 'x-amzn-errortype': code },
    body: JSON.stringify({ __type: code, message: err.message }),
  };
}

export async function sesV2(req: ApiRequest, deps: ApiDeps): Promise<ApiReply> {
  const op = `${req.method} ${req.route.replace(/\/+$/, '')}`;
  switch (op) {
    case 'POST /v2/email/outbound-emails':
      return ok(await sendEmail(req, deps));
    case 'GET /v2/email/account':
      return ok(getAccount(req, deps));
    default: {
      const answer =
        (await suppressionOp(req, deps, () => parse(req.body))) ??
        (await identityOp(req, deps)) ??
        (await templateOperation(req, deps));
      if (answer) return ok(answer);
      return {
        status: 404,
        headers: { ...JSON_TYPE, 'x-amzn-errortype': 'UnknownOperationException' },
        body: JSON.stringify({
          __type: 'UnknownOperationException',
          message: `posta does not implement ${op} of SES v2.`,
        }),
      };
    }
  }
}

// ---- operations

async function sendEmail(req: ApiRequest, deps: ApiDeps): Promise<{ MessageId: string }> {
  const b = parse(req.body);
  if (b.EndpointId !== undefined) {
    throw bad('EndpointId (multi-region endpoints) is not supported by posta');
  }
  const content = need(obj(b, 'Content', ''), 'Content');
  const destination = obj(b, 'Destination', '');
  const to = destination ? strings(destination, 'ToAddresses', 'Destination.') : [];
  const cc = destination ? strings(destination, 'CcAddresses', 'Destination.') : [];
  const bcc = destination ? strings(destination, 'BccAddresses', 'Destination.') : [];
  const from = str(b, 'FromEmailAddress', '');
  const feedback = str(b, 'FeedbackForwardingEmailAddress', '');
  const replyTo = strings(b, 'ReplyToAddresses', '');
  const tags = emailTags(b, 'EmailTags', '');
  const set = str(b, 'ConfigurationSetName', '');
  if (set !== undefined) tags['ses:configuration-set'] = [set];
  // posta has no contact lists: the option asks for one-click unsubscribe,
  // and its names are kept as tags (api/send.ts listTags)
  const lists = obj(b, 'ListManagementOptions', '');
  if (lists) {
    const list = need(
      str(lists, 'ContactListName', 'ListManagementOptions.'),
      'ListManagementOptions.ContactListName',
    );
    listTags(tags, list, str(lists, 'TopicName', 'ListManagementOptions.'));
  }

  const kinds = ['Raw', 'Simple', 'Template'].filter((k) => content[k] !== undefined);
  if (kinds.length !== 1) throw bad('Content must have exactly one of Raw, Simple and Template');
  let raw: Buffer;
  const destinations = destination ? [...to, ...cc, ...bcc] : undefined;
  if (content.Raw !== undefined) {
    const r = need(obj(content, 'Raw', 'Content.'), 'Content.Raw');
    raw = base64(need(str(r, 'Data', 'Content.Raw.'), 'Content.Raw.Data'), 'Content.Raw.Data');
  } else if (content.Simple !== undefined) {
    const s = need(obj(content, 'Simple', 'Content.'), 'Content.Simple');
    const subject = need(obj(s, 'Subject', 'Content.Simple.'), 'Content.Simple.Subject');
    const body = need(obj(s, 'Body', 'Content.Simple.'), 'Content.Simple.Body');
    const part = (name: string) => {
      const p = obj(body, name, 'Content.Simple.Body.');
      return (
        p &&
        need(str(p, 'Data', `Content.Simple.Body.${name}.`), `Content.Simple.Body.${name}.Data`)
      );
    };
    raw = await compose({
      from: need(from, 'FromEmailAddress'),
      to,
      cc,
      replyTo,
      subject: need(str(subject, 'Data', 'Content.Simple.Subject.'), 'Content.Simple.Subject.Data'),
      text: part('Text'),
      html: part('Html'),
      headers: headers(s, 'Headers', 'Content.Simple.'),
      attachments: attachments(s, 'Attachments', 'Content.Simple.'),
    });
  } else {
    const t = need(obj(content, 'Template', 'Content.'), 'Content.Template');
    raw = await templateMessage(
      t,
      { from: need(from, 'FromEmailAddress'), to, cc, replyTo },
      templateScope(deps.spool.db, req.key),
    );
  }
  const { messageId } = await sendMessage(deps, {
    key: req.key,
    raw,
    from: feedback ?? from,
    destinations,
    tags,
    clientIp: req.clientIp,
    protocol: req.protocol,
    // Simple and Template messages are built with these fields already
    ...(content.Raw !== undefined ? { replace: { from, replyTo } } : {}),
  });
  return { MessageId: messageId };
}

/**
 * A JSON double as SES writes it: 200.0, never 200. The model types the
 * SendQuota fields as doubles and botocore passes JSON numbers through as
 * they are, so `200` reached Python as an int where SES gives a float
 * (`aws sesv2 get-account` prints 200.0). JSON.rawJSON is in Node >= 21;
 * TypeScript's lib does not declare it yet.
 */
const json = JSON as unknown as { rawJSON(text: string): unknown };
function double(n: number): unknown {
  return json.rawJSON(Number.isInteger(n) ? `${n}.0` : String(n));
}

function getAccount(req: ApiRequest, deps: ApiDeps): Json {
  return {
    DedicatedIpAutoWarmupEnabled: false,
    EnforcementStatus: 'HEALTHY',
    ProductionAccessEnabled: true,
    SendingEnabled: true,
    SendQuota: {
      Max24HourSend: double(req.key.daily),
      MaxSendRate: double(req.key.rate),
      SentLast24Hours: double(sentLast24Hours(deps.spool.db, req.key.id)),
    },
    // hard bounces and complaints (ARF reports) join the list by themselves
    SuppressionAttributes: { SuppressedReasons: ['BOUNCE', 'COMPLAINT'] },
  };
}

/** ListEmailIdentities and GetEmailIdentity (identities.ts), or undefined for another route. */
async function identityOp(req: ApiRequest, deps: ApiDeps): Promise<Json | undefined> {
  const route = req.route.replace(/\/+$/, '');
  // today's model lists with POST /v2/email/list-identities; older SDKs (boto3 of 2022) GET
  const list =
    (req.method === 'POST' && route === '/v2/email/list-identities') ||
    (req.method === 'GET' && route === '/v2/email/identities');
  if (!list && req.method !== 'GET') return undefined;
  if (list) {
    const list = await Promise.all(
      deps.identities.domains(req.key).map((d) => deps.identities.get(req.key, d)),
    );
    return {
      EmailIdentities: list.flatMap((i) =>
        i
          ? [
              {
                IdentityType: i.type,
                IdentityName: i.name,
                SendingEnabled: true,
                VerificationStatus: i.dkim,
              },
            ]
          : [],
      ),
    };
  }
  if (!route.startsWith('/v2/email/identities/')) return undefined;
  const name = pathLabel(route.slice('/v2/email/identities/'.length), 'The identity in the path');
  const i = await deps.identities.get(req.key, name);
  if (!i) {
    throw new ApiError(
      'not-found',
      `Email identity ${name} does not exist (or this key may not use it).`,
    );
  }
  return {
    IdentityType: i.type,
    FeedbackForwardingStatus: true,
    // the keys are posta's own, so the domain may send whatever DNS says
    VerifiedForSendingStatus: true,
    VerificationStatus: i.dkim,
    DkimAttributes: {
      SigningEnabled: true,
      Status: i.dkim,
      Tokens: i.selectors,
      SigningAttributesOrigin: 'EXTERNAL',
      ...(i.rsaBits
        ? { CurrentSigningKeyLength: i.rsaBits >= 2048 ? 'RSA_2048_BIT' : 'RSA_1024_BIT' }
        : {}),
    },
    MailFromAttributes: { BehaviorOnMxFailure: 'USE_DEFAULT_VALUE' },
    Policies: {},
    Tags: [],
  };
}
