/**
 * The HTTP APIs on posta's http and https listeners: SES v2 (rest-json, any
 * path holding /v2/email/), the Resend API (/emails, /emails/batch and
 * /emails/{id}, at the root or after a prefix, since a Resend SDK's base URL
 * may carry one) and SES v1 (form-encoded POST with an Action, at the root
 * or a prefix). Each request is read whole (up to the size a message of
 * [limits] message_size takes in base64 JSON, within the memory budget SMTP
 * sessions share), authenticated against the key store (SigV4 for SES, the
 * Bearer token re_<id>_<secret> for Resend), and handed to its wire format
 * module; every reply carries x-amzn-RequestId (node:http adds Date, from
 * which the SDKs correct a skewed clock).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { MemoryBudget } from '../smtp/data.ts';
import type { Spool } from '../queue/spool.ts';
import type { SuppressionList } from '../suppression/suppression.ts';
import { parseResendToken, type KeyStore, type ApiKey } from '../keys/keys.ts';
import { ApiError } from './errors.ts';
import { verifySigV4, type SignedRequest } from './sigv4.ts';
import type { SendDeps } from './send.ts';
import { Identities } from './identities.ts';
import type { ResolveFn } from '../dns/resolver.ts';
import { whichApi, type Api, type ApiHandler } from './lazy.ts';
import { sesV2, v2Error } from './ses-v2.ts';
import { sesV1, v1Error } from './ses-v1.ts';
import { resend, resendError } from './resend.ts';
import { Idempotency } from './idempotency.ts';

export interface ApiDeps extends SendDeps {
  /** The tables of the APIs' own state (templates, idempotency, statistics). */
  spool: Spool;
  /** The suppression lists, where the queue is (QueueStore.suppressions). */
  suppressions: SuppressionList;
  keys: KeyStore;
  budget: MemoryBudget;
  identities: Identities;
}

/** What the server gives the APIs (lazy.ts): the identities are made here, with their DNS checks. */
export type ApiStartDeps = Omit<ApiDeps, 'identities'> & { resolve: ResolveFn };

/** A request the wire modules answer: authenticated, body read. */
export interface ApiRequest {
  method: string;
  /** The path from /v2/email/ on (v2), from /emails on (Resend), or "/" (v1); the query apart. */
  route: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: Buffer;
  key: ApiKey;
  clientIp: string;
  protocol: 'HTTP' | 'HTTPS';
}

export interface ApiReply {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** The largest request body: a message of `messageSize` in base64, in JSON, with room for the rest. */
export function bodyLimit(messageSize: number): number {
  return Math.ceil((messageSize * 4) / 3) + 1024 * 1024;
}

export function createApi(start: ApiStartDeps): ApiHandler {
  const deps: ApiDeps = {
    ...start,
    identities: new Identities({
      directory: start.directory,
      resolve: start.resolve,
      hostname: start.hostname,
    }),
  };
  const limit = bodyLimit(deps.messageSize);
  const idempotency = new Idempotency(deps.spool.db, deps.log);
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const which = whichApi(req, path);
    if (!which) return false;
    const requestId = randomUUID();
    const send = (r: ApiReply) => {
      res.writeHead(r.status, {
        ...r.headers,
        'x-amzn-requestid': requestId,
        'content-length': Buffer.byteLength(r.body),
      });
      res.end(r.body);
    };
    const errorReply = {
      v2: v2Error,
      v1: (err: ApiError) => v1Error(err, requestId),
      resend: resendError,
    }[which.api];
    const fail = (err: ApiError) => send(errorReply(err));
    const ctx = { requestId, deps, limit, idempotency };
    void handle(req, path, q < 0 ? '' : url.slice(q + 1), which, ctx)
      .then(send, (err: Error) => {
        if (err instanceof ApiError) return fail(err);
        deps.log.error({ err: err.message, path }, 'API request failed');
        fail(new ApiError('unavailable', 'Internal error; try again later.'));
      })
      .catch(() => res.destroy());
    return true;
  };
}

async function handle(
  req: IncomingMessage,
  path: string,
  queryText: string,
  which: { api: Api; route: string },
  ctx: { requestId: string; deps: ApiDeps; limit: number; idempotency: Idempotency },
): Promise<ApiReply> {
  const { deps } = ctx;
  // SigV4 normalises the path it signs (dot segments, empty segments):
  // route only on paths that are their own normal form
  if (/\/\.{1,2}(\/|$)|\/\//.test(path)) {
    throw new ApiError('bad-request', 'The path has "." or ".." or empty segments.');
  }
  // who is asking, as far as it can be told before the body: nobody without
  // a key takes from the memory budget that SMTP sessions share
  const bearerKey = which.api === 'resend' ? bearer(req.headers.authorization, deps.keys) : null;
  if (!bearerKey) knownSigner(req.headers.authorization, deps.keys);
  const body = await readBody(req, Math.min(ctx.limit, deps.budget.total), deps.budget);
  try {
    const query = new URLSearchParams(queryText);
    const method = req.method ?? 'GET';
    const key =
      bearerKey ??
      (await sigV4Key(
        { method, path, query: queryObject(query), headers: req.headers, body },
        deps.keys,
      ));
    const request: ApiRequest = {
      method,
      route: which.route,
      query,
      headers: req.headers,
      body,
      key,
      clientIp: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      protocol: 'encrypted' in req.socket ? 'HTTPS' : 'HTTP',
    };
    switch (which.api) {
      case 'v2':
        return await sesV2(request, deps);
      case 'v1':
        return await sesV1(request, deps, ctx.requestId);
      case 'resend':
        return await resend(request, deps, ctx.idempotency);
    }
  } finally {
    deps.budget.give(body.length);
  }
}

async function sigV4Key(signed: SignedRequest, keys: KeyStore): Promise<ApiKey> {
  const auth = await verifySigV4(signed, (id) => keys.secret(id));
  if (!auth.ok) throw new ApiError('auth', auth.message, auth.failure);
  const key = keys.get(auth.keyId);
  if (!key) {
    throw new ApiError(
      'auth',
      'The security token included in the request is invalid.',
      'unknown-key',
    );
  }
  return key;
}

/**
 * Before the body is read: an Authorization header naming a key in use (the
 * signature itself needs the body). The answers are verifySigV4's.
 */
function knownSigner(authorization: string | undefined, keys: KeyStore): void {
  if (!authorization) {
    throw new ApiError('auth', 'Request is missing Authentication Token', 'missing');
  }
  const id = /^AWS4-HMAC-SHA256 +Credential=([^/,\s]+)\//.exec(authorization.trim())?.[1];
  if (id === undefined) return; // verifySigV4 says what is wrong with it
  if (keys.secret(id) === undefined) {
    throw new ApiError(
      'auth',
      'The security token included in the request is invalid.',
      'unknown-key',
    );
  }
}

/** The key of `Authorization: Bearer re_<id>_<secret>` (Resend). */
function bearer(authorization: string | undefined, keys: KeyStore): ApiKey {
  const m = /^Bearer\s+(\S*)\s*$/i.exec(authorization ?? '');
  if (!m?.[1]) {
    throw new ApiError('auth', 'Missing API key in the authorization header.', 'missing');
  }
  const token = parseResendToken(m[1]);
  const key = token && keys.check(token.id, token.secret);
  if (!key) {
    throw new ApiError(
      'auth',
      'API key is invalid: give the Resend API key `posta key create` printed (re_...).',
      'invalid',
    );
  }
  return key;
}

function queryObject(q: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k of new Set(q.keys())) {
    const all = q.getAll(k);
    out[k] = all.length === 1 ? (all[0] ?? '') : all;
  }
  return out;
}

/**
 * The whole body, counted against the shared memory budget; over `limit`
 * (never more than the whole budget, which it could not get) is refused.
 */
function readBody(req: IncomingMessage, limit: number, budget: MemoryBudget): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooBig = () =>
      new ApiError(
        'rejected',
        `The request is larger than ${limit} bytes, what a message of [limits] message_size takes (within [limits] data_memory).`,
      );
    if (declared > limit) {
      req.resume();
      reject(tooBig());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const stop = (err: ApiError) => {
      failed = true;
      budget.give(size);
      req.resume();
      reject(err);
    };
    req.on('data', (c: Buffer) => {
      if (failed) return;
      if (size + c.length > limit) return stop(tooBig());
      if (!budget.take(c.length)) {
        return stop(
          new ApiError(
            'unavailable',
            'posta is short of memory for messages now; try again later.',
          ),
        );
      }
      size += c.length;
      chunks.push(c);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (err) => {
      if (!failed) {
        budget.give(size);
        failed = true;
        reject(err);
      }
    });
  });
}
