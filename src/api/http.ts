/**
 * The HTTP APIs on posta's http and https listeners: SES v2 (rest-json, any
 * path holding /v2/email/) and SES v1 (form-encoded POST with an Action, at
 * the root or a prefix). Each request is read whole (up to the size a
 * message of [limits] message_size takes in base64 JSON, within the memory
 * budget SMTP sessions share), authenticated with SigV4 against the key
 * store, and handed to its wire format module; every reply carries
 * x-amzn-RequestId (node:http adds Date, from which the SDKs correct a
 * skewed clock).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MemoryBudget } from '../smtp/data.ts';
import type { KeyStore, ApiKey } from '../keys/keys.ts';
import { ApiError } from './errors.ts';
import { verifySigV4, type SignedRequest } from './sigv4.ts';
import type { SendDeps } from './send.ts';
import type { Identities } from './identities.ts';
import { sesV2, v2Error } from './ses-v2.ts';
import { sesV1, v1Error } from './ses-v1.ts';

export interface ApiDeps extends SendDeps {
  keys: KeyStore;
  budget: MemoryBudget;
  identities: Identities;
}

/** A request the wire modules answer: authenticated, body read. */
export interface ApiRequest {
  method: string;
  /** The path from /v2/email/ on (v2), or "/" (v1); the query apart. */
  route: string;
  query: URLSearchParams;
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

type Api = 'v2' | 'v1';

/** Which API a request is for, or null when it is none of them (the caller answers it). */
function whichApi(req: IncomingMessage, path: string): { api: Api; route: string } | null {
  const at = path.indexOf('/v2/email/');
  if (at >= 0) return { api: 'v2', route: path.slice(at) };
  const type = String(req.headers['content-type'] ?? '');
  if (
    path.endsWith('/') &&
    req.method === 'POST' &&
    type.startsWith('application/x-www-form-urlencoded')
  ) {
    return { api: 'v1', route: '/' };
  }
  if (path.endsWith('/') && req.method === 'GET' && /[?&]Action=/.test(req.url ?? '')) {
    return { api: 'v1', route: '/' };
  }
  return null;
}

/** The largest request body: a message of `messageSize` in base64, in JSON, with room for the rest. */
export function bodyLimit(messageSize: number): number {
  return Math.ceil((messageSize * 4) / 3) + 1024 * 1024;
}

/** Answers the request and returns true when it is for an API; false leaves it to the caller. */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export function createApi(deps: ApiDeps): ApiHandler {
  const limit = bodyLimit(deps.messageSize);
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
    const fail = (err: ApiError) =>
      send(which.api === 'v2' ? v2Error(err) : v1Error(err, requestId));
    void handle(req, path, q < 0 ? '' : url.slice(q + 1), which, requestId, deps, limit)
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
  requestId: string,
  deps: ApiDeps,
  limit: number,
): Promise<ApiReply> {
  const body = await readBody(req, limit, deps.budget);
  try {
    const query = new URLSearchParams(queryText);
    const signed: SignedRequest = {
      method: req.method ?? 'GET',
      path,
      query: queryObject(query),
      headers: req.headers,
      body,
    };
    const auth = await verifySigV4(signed, (id) => deps.keys.secret(id));
    if (!auth.ok) throw new ApiError('auth', auth.message, auth.failure);
    const key = deps.keys.get(auth.keyId);
    if (!key)
      throw new ApiError(
        'auth',
        'The security token included in the request is invalid.',
        'unknown-key',
      );
    const request: ApiRequest = {
      method: signed.method,
      route: which.route,
      query,
      body,
      key,
      clientIp: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
      protocol: 'encrypted' in req.socket ? 'HTTPS' : 'HTTP',
    };
    return which.api === 'v2' ? await sesV2(request, deps) : await sesV1(request, deps, requestId);
  } finally {
    deps.budget.give(body.length);
  }
}

function queryObject(q: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const k of new Set(q.keys())) {
    const all = q.getAll(k);
    out[k] = all.length === 1 ? (all[0] ?? '') : all;
  }
  return out;
}

/** The whole body, counted against the shared memory budget; over `limit` is refused. */
function readBody(req: IncomingMessage, limit: number, budget: MemoryBudget): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    const tooBig = () =>
      new ApiError(
        'rejected',
        `The request is larger than ${limit} bytes; the message size limit is [limits] message_size.`,
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
