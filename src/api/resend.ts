/**
 * The Resend API (https://resend.com/docs/api-reference) as the resend SDKs
 * send it with their base URL at posta: the wire format only; sending is
 * send.ts's. resend-node takes `new Resend(key, { baseUrl })` or reads
 * RESEND_BASE_URL when the client is made, and requests
 * `${baseUrl}${path}`, so a base URL may carry a path prefix (http.ts).
 *
 * - POST /emails: {from, to, subject, html, text, cc, bcc, reply_to,
 *   headers, attachments, tags} → {"id": the queue id}. to, cc, bcc and
 *   reply_to are a string or a list; bcc travels only in the envelope.
 * - POST /emails/batch: a list of up to 100 of those → {"data": [{id}]}.
 *   With x-batch-validation: strict (the SDK's default) every message is
 *   checked before any is queued and the quota is taken for all at once;
 *   with permissive each stands alone and the refused ones are in
 *   "errors": [{index, message}].
 * - GET /emails/{id}: the email object (resend-email.ts).
 * - Idempotency-Key on the POSTs: idempotency.ts.
 *
 * Auth is `Authorization: Bearer re_<key id>_<secret>` (keys/keys.ts),
 * checked in http.ts. Errors are the status and {statusCode, name,
 * message}; the SDK hands that object back as `error` as it is, so `name`
 * is one of its RESEND_ERROR_CODE_KEY (resend-node src/interfaces.ts),
 * with the status Resend's error table gives it
 * (https://resend.com/docs/api-reference/errors).
 *
 * Not supported, refused with validation_error: scheduled_at, template,
 * topic_id, and attachments by path (posta fetches no URLs).
 */
import addressparser from 'nodemailer/lib/addressparser';
import { compose, type Attachment } from './compose.ts';
import { ApiError } from './errors.ts';
import type { ApiDeps, ApiReply, ApiRequest } from './http.ts';
import type { Idempotency } from './idempotency.ts';
import { emailObject } from './resend-email.ts';
import { prepareSend, queueSend, type PreparedSend, type SendInput } from './send.ts';

const JSON_TYPE = { 'content-type': 'application/json' };

/** Resend's limit of emails in one batch. */
export const MAX_BATCH = 100;

/** The status and name of each failure, from Resend's error table. */
const NAMES: Record<string, [number, string]> = {
  'bad-request': [422, 'validation_error'],
  'bad-request:missing': [422, 'missing_required_field'],
  'bad-request:from': [422, 'invalid_from_address'],
  'bad-request:attachment': [422, 'invalid_attachment'],
  'bad-request:idempotency-key': [400, 'invalid_idempotency_key'],
  rejected: [422, 'validation_error'],
  // Resend: "The example.com domain is not verified" is a 403 validation_error
  'rejected:sender': [403, 'validation_error'],
  rate: [429, 'rate_limit_exceeded'],
  daily: [429, 'daily_quota_exceeded'],
  'not-found': [404, 'not_found'],
  'not-found:method': [405, 'method_not_allowed'],
  'conflict:payload': [409, 'invalid_idempotent_request'],
  'conflict:concurrent': [409, 'concurrent_idempotent_requests'],
  unavailable: [500, 'application_error'],
  'auth:missing': [401, 'missing_api_key'],
  'auth:invalid': [403, 'invalid_api_key'],
};

export function resendError(err: ApiError): ApiReply {
  const [statusCode, name] = NAMES[`${err.kind}:${err.detail}`] ??
    NAMES[err.kind] ?? [500, 'application_error'];
  return {
    status: statusCode,
    headers: err.kind === 'rate' ? { ...JSON_TYPE, 'retry-after': '1' } : JSON_TYPE,
    body: JSON.stringify({ statusCode, name, message: err.message }),
  };
}

export async function resend(
  req: ApiRequest,
  deps: ApiDeps,
  idempotency: Idempotency,
): Promise<ApiReply> {
  const route = req.route.replace(/\/+$/, '');
  const post = (handle: () => Promise<unknown>) => idempotent(req, idempotency, handle);
  if (route === '/emails') {
    if (req.method === 'POST') return post(() => sendEmail(req, deps));
  } else if (route === '/emails/batch') {
    if (req.method === 'POST') return post(() => sendBatch(req, deps));
  } else if (/^\/emails\/[^/]+$/.test(route)) {
    // queue ids need no escaping: an escaped id is none of ours
    const id = route.slice('/emails/'.length);
    if (req.method === 'GET') return ok(emailObject(deps.spool.db, req.key, id));
  } else {
    throw new ApiError('not-found', `posta does not implement ${req.method} ${route}.`);
  }
  throw new ApiError(
    'not-found',
    `posta does not implement ${req.method} ${route}; it has POST /emails, POST /emails/batch and GET /emails/{id}.`,
    'method',
  );
}

function ok(body: unknown): ApiReply {
  return { status: 200, headers: JSON_TYPE, body: JSON.stringify(body) };
}

async function idempotent(
  req: ApiRequest,
  idempotency: Idempotency,
  handle: () => Promise<unknown>,
): Promise<ApiReply> {
  const given = req.headers['idempotency-key'];
  if (given === undefined) return ok(await handle());
  const body = await idempotency.once(
    {
      key: req.key.id,
      idempotencyKey: String(given),
      request: Buffer.concat([Buffer.from(`${req.method} ${req.route}\n`), req.body]),
    },
    async () => JSON.stringify(await handle()),
  );
  return { status: 200, headers: JSON_TYPE, body };
}

// ---- operations

async function sendEmail(req: ApiRequest, deps: ApiDeps): Promise<{ id: string }> {
  const email = parse(req.body);
  if (!isObject(email)) throw bad('The request body must be a JSON object.');
  const { messageId } = await queueSend(deps, prepareSend(deps, await sendInput(email, req)));
  return { id: messageId };
}

async function sendBatch(
  req: ApiRequest,
  deps: ApiDeps,
): Promise<{ data: { id: string }[]; errors?: { index: number; message: string }[] }> {
  const emails = parse(req.body);
  if (!Array.isArray(emails)) throw bad('The request body must be a JSON list of emails.');
  if (emails.length === 0) throw bad('The batch is empty.');
  if (emails.length > MAX_BATCH) {
    throw bad(`A batch holds at most ${MAX_BATCH} emails, not ${emails.length}.`);
  }
  const prepare = async (email: unknown, index: number): Promise<PreparedSend> => {
    try {
      if (!isObject(email)) throw bad('Each email must be a JSON object.');
      return prepareSend(deps, await sendInput(email, req));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      throw new ApiError(err.kind, `emails[${index}]: ${err.message}`, err.detail);
    }
  };
  if (req.headers['x-batch-validation'] === 'permissive') {
    const data: { id: string }[] = [];
    const errors: { index: number; message: string }[] = [];
    for (const [index, email] of emails.entries()) {
      try {
        const { messageId } = await queueSend(deps, await prepare(email, index));
        data.push({ id: messageId });
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        errors.push({ index, message: err.message });
      }
    }
    return { data, errors };
  }
  const prepared: PreparedSend[] = [];
  for (const [index, email] of emails.entries()) prepared.push(await prepare(email, index));
  const count = (ps: PreparedSend[]) => ps.reduce((n, p) => n + p.recipients.length, 0);
  const refused = deps.quotas.take(req.key, count(prepared));
  if (refused) throw new ApiError(refused.kind, refused.message);
  const data: { id: string }[] = [];
  for (const [index, p] of prepared.entries()) {
    try {
      data.push({ id: (await queueSend(deps, p, { quotaTaken: true })).messageId });
    } catch (err) {
      // queueSend gave this message's share back; the rest were not sent either
      deps.quotas.giveBack(req.key, count(prepared.slice(index + 1)));
      throw err;
    }
  }
  return { data };
}

/** One email of the API as the send service's input: its fields checked and composed. */
async function sendInput(e: Json, req: ApiRequest): Promise<SendInput> {
  for (const [name, what] of [
    ['scheduled_at', 'Scheduled sending (`scheduled_at`)'],
    ['template', 'Templates (`template`)'],
    ['topic_id', 'Topics (`topic_id`)'],
  ] as const) {
    if (e[name] !== undefined && e[name] !== null) {
      throw bad(`${what} is not supported by posta; send the email when it is due.`);
    }
  }
  const from = need(str(e, 'from'), 'from');
  checkFrom(from);
  const to = addresses(e, 'to');
  if (to.length === 0) throw bad('Missing `to` field.', 'missing');
  const cc = addresses(e, 'cc');
  const bcc = addresses(e, 'bcc');
  const html = str(e, 'html');
  const text = str(e, 'text');
  if (html === undefined && text === undefined) {
    throw bad('Missing `html` or `text` field.', 'missing');
  }
  const raw = await compose({
    from,
    to,
    cc,
    replyTo: addresses(e, 'reply_to'),
    subject: need(str(e, 'subject'), 'subject'),
    text,
    html,
    headers: headers(e),
    attachments: list(e, 'attachments').map(attachment),
  });
  return {
    key: req.key,
    raw,
    from,
    destinations: [...to, ...cc, ...bcc],
    tags: tags(e),
    clientIp: req.clientIp,
    protocol: req.protocol,
  };
}

// ---- reading the JSON body: each field checked for its type, Resend's names in errors

type Json = Record<string, unknown>;

function parse(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw bad('The request body is not valid JSON.');
  }
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function bad(message: string, detail?: string): ApiError {
  return new ApiError('bad-request', message, detail);
}

function need<T>(v: T | undefined, name: string): T {
  if (v === undefined || v === '') throw bad(`Missing \`${name}\` field.`, 'missing');
  return v;
}

function str(o: Json, name: string): string | undefined {
  const v = o[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(`The \`${name}\` field must be a string.`);
  return v;
}

/** A string or a list of strings. */
function addresses(o: Json, name: string): string[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  const all = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(all) || all.some((s) => typeof s !== 'string')) {
    throw bad(`The \`${name}\` field must be a string or a list of strings.`);
  }
  return all as string[];
}

function list(o: Json, name: string): Json[] {
  const v = o[name];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || !v.every(isObject)) {
    throw bad(`The \`${name}\` field must be a list of objects.`);
  }
  return v;
}

/** "a@b" or "Name <a@b>", one address. */
function checkFrom(from: string): void {
  const parsed = addressparser(from, { flatten: true });
  if (parsed.length !== 1 || !/^[^@\s]+@[^@\s]+$/.test(parsed[0]?.address ?? '')) {
    throw bad(
      'Invalid `from` field. The email address needs to follow the `email@example.com` or `Name <email@example.com>` format.',
      'from',
    );
  }
}

function headers(o: Json): { name: string; value: string }[] {
  const v = o.headers;
  if (v === undefined || v === null) return [];
  if (!isObject(v)) throw bad('The `headers` field must be an object of header names and values.');
  return Object.entries(v).map(([name, value]) => {
    if (typeof value !== 'string') throw bad(`The header ${name} must have a string value.`);
    return { name, value };
  });
}

/** Resend's rule for tag names and values: ASCII letters, digits, "_" and "-", up to 256. */
const TAG = /^[A-Za-z0-9_-]{1,256}$/;

function tags(o: Json): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const t of list(o, 'tags')) {
    const name = need(str(t, 'name'), 'tags[].name');
    const value = need(str(t, 'value'), 'tags[].value');
    if (!TAG.test(name) || !TAG.test(value)) {
      throw bad(
        'Tags should only contain ASCII letters (a–z, A–Z), numbers (0–9), underscores (_), or dashes (-), up to 256 characters.',
      );
    }
    out[name] = [...(out[name] ?? []), value];
  }
  return out;
}

function attachment(a: Json, index: number): Attachment {
  const what = `attachments[${index}]`;
  if (a.path !== undefined && a.path !== null) {
    throw bad(
      `${what}: posta does not fetch attachments from a \`path\`; send their \`content\`.`,
      'attachment',
    );
  }
  const contentId = str(a, 'content_id');
  return {
    filename: need(str(a, 'filename'), `${what}.filename`),
    content: content(a.content, what),
    contentType: str(a, 'content_type'),
    disposition: contentId === undefined ? undefined : 'inline',
    contentId,
  };
}

/**
 * The bytes of an attachment: base64 (resend-node sends a Buffer so), a
 * list of byte values (resend-python's `list(f.read())`), or a Node
 * Buffer as JSON.stringify writes it ({"type": "Buffer", "data": [...]},
 * older resend-node).
 */
function content(v: unknown, what: string): Buffer {
  if (typeof v === 'string') {
    const clean = v.replace(/\s+/g, '');
    if (/^[A-Za-z0-9+/]*={0,2}$/.test(clean)) return Buffer.from(clean, 'base64');
    throw bad(`${what}: \`content\` must be base64 or a list of bytes.`, 'attachment');
  }
  const bytes = isObject(v) && v.type === 'Buffer' ? v.data : v;
  if (
    Array.isArray(bytes) &&
    bytes.every((b) => Number.isInteger(b) && (b as number) >= 0 && (b as number) <= 255)
  ) {
    return Buffer.from(bytes as number[]);
  }
  if (v === undefined || v === null) {
    throw bad(`${what}: an attachment must have a \`content\`.`, 'attachment');
  }
  throw bad(`${what}: \`content\` must be base64 or a list of bytes.`, 'attachment');
}
