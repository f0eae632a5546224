/**
 * SES v2's suppression list operations over posta's per-domain lists
 * (suppression/suppression.ts); a key acts on the lists of its domains:
 *
 * - PutSuppressedDestination    PUT    /v2/email/suppression/addresses {EmailAddress, Reason}
 * - GetSuppressedDestination    GET    /v2/email/suppression/addresses/{EmailAddress}
 * - DeleteSuppressedDestination DELETE /v2/email/suppression/addresses/{EmailAddress}
 * - ListSuppressedDestinations  GET    /v2/email/suppression/addresses
 *       ?Reason=&StartDate=&EndDate=&PageSize=&NextToken=
 *
 * Timestamps go out as epoch seconds (restJson1) and come in, in the query,
 * as ISO 8601 (what the SDKs send) or epoch seconds.
 */
import { parseAddress } from '../address/address.ts';
import { sesReason, type SuppressionReason } from '../suppression/suppression.ts';
import { ApiError } from './errors.ts';
import { pathLabel } from './json.ts';
import type { ApiDeps, ApiRequest } from './http.ts';

export const SUPPRESSION = '/v2/email/suppression/addresses';

function reason(v: unknown): SuppressionReason {
  if (v === 'BOUNCE' || v === 'COMPLAINT') return v;
  throw new ApiError('bad-request', 'Reason must be BOUNCE or COMPLAINT.');
}

function address(text: string): string {
  const a = parseAddress(text);
  if (!a.ok) throw new ApiError('bad-request', `Invalid email address <${text}>.`);
  return `${a.value.local}@${a.value.domain}`;
}

function time(text: string | null, name: string): number | undefined {
  if (text === null || text === '') return undefined;
  const t = /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : Date.parse(text);
  if (Number.isNaN(t)) throw new ApiError('bad-request', `${name} is not a timestamp.`);
  return t;
}

const seconds = (ms: number) => Math.floor(ms / 1000);

/** The operation's answer, or undefined when the route is not one of these. */
export async function suppressionOp(
  req: ApiRequest,
  deps: ApiDeps,
  body: () => Record<string, unknown>,
): Promise<Record<string, unknown> | undefined> {
  const list = deps.suppressions;
  const domains = req.key.domains;
  const route = req.route.replace(/\/+$/, '');
  if (route === SUPPRESSION && req.method === 'PUT') {
    const b = body();
    const a = address(typeof b.EmailAddress === 'string' ? b.EmailAddress : '');
    const r = reason(b.Reason);
    for (const domain of domains) await list.add({ domain, address: a, reason: r });
    return {};
  }
  if (route === SUPPRESSION && req.method === 'GET') {
    const reasons = req.query.getAll('Reason').map(reason);
    const from = time(req.query.get('StartDate'), 'StartDate');
    const to = time(req.query.get('EndDate'), 'EndDate');
    const size = Number(req.query.get('PageSize') ?? 1000);
    if (!Number.isInteger(size) || size < 1 || size > 1000) {
      throw new ApiError('bad-request', 'PageSize must be from 1 to 1000.');
    }
    const token = req.query.get('NextToken');
    const offset = token ? Number(Buffer.from(token, 'base64url').toString()) : 0;
    if (!Number.isInteger(offset) || offset < 0) {
      throw new ApiError('bad-request', 'NextToken is not one posta gave.');
    }
    // one address suppressed for several of the key's domains is listed once
    const seen = new Set<string>();
    const all = (await list.list({ domains, from, to }))
      // an UNSUBSCRIBE entry is listed, and filtered, as COMPLAINT (suppression.ts)
      .filter((s) => reasons.length === 0 || reasons.includes(sesReason(s.reason)))
      .filter((s) => !seen.has(s.address) && seen.add(s.address));
    const page = all.slice(offset, offset + size);
    return {
      SuppressedDestinationSummaries: page.map((s) => ({
        EmailAddress: s.address,
        Reason: sesReason(s.reason),
        LastUpdateTime: seconds(s.createdAt),
      })),
      ...(offset + size < all.length
        ? { NextToken: Buffer.from(String(offset + size)).toString('base64url') }
        : {}),
    };
  }
  if (!route.startsWith(`${SUPPRESSION}/`)) return undefined;
  const a = address(pathLabel(route.slice(SUPPRESSION.length + 1), 'The address in the path'));
  if (req.method === 'GET') {
    // the key's domains in their order: the entry of the first that has one
    const entries = await list.list({ domains, address: a });
    const found = domains.map((d) => entries.find((s) => s.domain === d)).find(Boolean);
    if (!found) throw new ApiError('not-found', `${a} is not on the suppression list.`);
    return {
      SuppressedDestination: {
        EmailAddress: found.address,
        Reason: sesReason(found.reason),
        LastUpdateTime: seconds(found.createdAt),
        ...(found.message ? { Attributes: { MessageId: found.message } } : {}),
      },
    };
  }
  if (req.method === 'DELETE') {
    let removed = false;
    for (const d of domains) if (await list.remove(d, a)) removed = true;
    if (!removed) throw new ApiError('not-found', `${a} is not on the suppression list.`);
    return {};
  }
  return undefined;
}
