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
 * in its config folder).
 * Errors: <ErrorResponse> with the model's error code (botocore maps its
 * exception classes by that code): MessageRejected, Throttling ("Maximum
 * sending rate exceeded."), InvalidParameterValue, and the SigV4 codes.
 */
import { createHash } from 'node:crypto';
import { sentLast24Hours } from '../keys/usage.ts';
import { sendStatistics } from '../events/events.ts';
import { compose } from './compose.ts';
import { ApiError } from './errors.ts';
import type { ApiDeps, ApiReply, ApiRequest } from './http.ts';
import { sendMessage } from './send.ts';

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
  exists: [400, 'AlreadyExists'],
  unavailable: [500, 'InternalFailure'],
  'auth:missing': [403, 'MissingAuthenticationToken'],
  'auth:incomplete': [400, 'IncompleteSignature'],
  'auth:unknown-key': [403, 'InvalidClientTokenId'],
  'auth:expired': [403, 'SignatureDoesNotMatch'],
  'auth:mismatch': [403, 'SignatureDoesNotMatch'],
};

export function xml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function v1Error(err: ApiError, requestId: string): ApiReply {
  const [status, code] = CODES[err.kind === 'auth' ? `auth:${err.detail}` : err.kind] ?? [
    500,
    'InternalFailure',
  ];
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

function tags(p: URLSearchParams): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (let i = 1; p.has(`Tags.member.${i}.Name`); i++) {
    const name = p.get(`Tags.member.${i}.Name`) ?? '';
    out[name] = [...(out[name] ?? []), p.get(`Tags.member.${i}.Value`) ?? ''];
  }
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
      const to = members(p, 'Destination.ToAddresses');
      const cc = members(p, 'Destination.CcAddresses');
      const bcc = members(p, 'Destination.BccAddresses');
      const raw = await compose({
        from: source,
        to,
        cc,
        replyTo: members(p, 'ReplyToAddresses'),
        subject: need(p, 'Message.Subject.Data'),
        text: p.get('Message.Body.Text.Data') ?? undefined,
        html: p.get('Message.Body.Html.Data') ?? undefined,
      });
      const { messageId } = await sendMessage(deps, {
        key: req.key,
        raw,
        from: p.get('ReturnPath') || source,
        destinations: [...to, ...cc, ...bcc],
        tags: tags(p),
        clientIp: req.clientIp,
        protocol: req.protocol,
        maxSize: V1_MAX_SIZE,
      });
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
      return invalidAction(action, requestId);
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
