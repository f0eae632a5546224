/**
 * AWS Signature Version 4 on requests to posta's SES APIs: the signature is
 * recomputed with @smithy/signature-v4 (the signer inside every JS SDK v3
 * client) over the request as it arrived, and compared.
 *
 * What the signer is given, and why (research/ses-api.md §3):
 * - the client's own SignedHeaders list as `signableHeaders`, and only those
 *   headers: clients sign different sets (botocore: content-type;host;
 *   x-amz-date), and `host` must always be among them;
 * - the raw path as received (with any prefix in front of /v2/email), escaped
 *   again by the signer (uriEscapePath), and the query decoded;
 * - the body's SHA-256 computed here: an `x-amz-content-sha256` header is
 *   never trusted, only compared;
 * - the region and service from the credential scope: any region, and the
 *   services "ses" and "email" (old PHP SDKs sign with "email");
 * - the time from `x-amz-date`, which must fall in the scope's day and within
 *   15 minutes of this clock (AWS's window).
 *
 * The credential's secret comes from the key store (keys.ts); SigV4 needs it
 * in the clear, which is why keys are not hashed.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Checksum, SourceData } from '@smithy/types';

/** The request as the HTTP layer read it. */
export interface SignedRequest {
  method: string;
  /** The path as received, still percent-encoded, without the query. */
  path: string;
  /** The query, decoded. */
  query: Record<string, string | string[]>;
  /** Header names lower-case, as node:http gives them. */
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type SigV4Failure =
  /** No Authorization header (nor a presigned query). */
  | 'missing'
  /** An Authorization header that cannot be read. */
  | 'incomplete'
  /** No such access key (or a revoked one). */
  | 'unknown-key'
  /** x-amz-date outside the window, or not the scope's day. */
  | 'expired'
  | 'mismatch';

export type SigV4Result =
  { ok: true; keyId: string } | { ok: false; failure: SigV4Failure; message: string };

/** AWS's clock window: requests more than 15 minutes off are refused. */
export const MAX_SKEW_MS = 15 * 60_000;

const AUTH =
  /^AWS4-HMAC-SHA256 +Credential=([^/,\s]+)\/(\d{8})\/([^/,\s]*)\/([^/,\s]*)\/aws4_request *, *SignedHeaders=([a-z0-9;_.-]+) *, *Signature=([0-9a-f]{64})$/;

/** node:crypto as the Checksum the signer asks for (SHA-256, or HMAC-SHA256 with a secret). */
class Sha256 implements Checksum {
  private readonly secret: SourceData | undefined;
  private hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: SourceData) {
    this.secret = secret;
    this.hash = this.fresh();
  }
  private fresh() {
    return this.secret === undefined
      ? createHash('sha256')
      : createHmac('sha256', toBuffer(this.secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBuffer(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

function toBuffer(d: SourceData): Buffer {
  if (typeof d === 'string') return Buffer.from(d, 'utf8');
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  return Buffer.from(d);
}

function header(req: SignedRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/** "20261201T203355Z" as a Date; undefined when it is not that form. */
function amzDate(s: string): Date | undefined {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  if (!m) return undefined;
  const [, y = 0, mo = 1, d, h, mi, se] = m.map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, se);
  return Number.isNaN(t) ? undefined : new Date(t);
}

export async function verifySigV4(
  req: SignedRequest,
  secretOf: (keyId: string) => string | undefined,
  now = new Date(),
): Promise<SigV4Result> {
  const auth = header(req, 'authorization');
  if (!auth) {
    return { ok: false, failure: 'missing', message: 'Request is missing Authentication Token' };
  }
  const m = AUTH.exec(auth.trim());
  if (!m) {
    return {
      ok: false,
      failure: 'incomplete',
      message:
        "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters (AWS4-HMAC-SHA256).",
    };
  }
  const [, keyId = '', day = '', region = '', service = '', signedList = '', signature = ''] = m;
  const signed = signedList.split(';');
  if (!signed.includes('host')) {
    return {
      ok: false,
      failure: 'incomplete',
      message: "'Host' must be a signed header (SignedHeaders)",
    };
  }
  if (service !== 'ses' && service !== 'email') {
    return {
      ok: false,
      failure: 'mismatch',
      message: `Credential should be scoped to correct service: 'ses'.`,
    };
  }
  const secret = secretOf(keyId);
  if (secret === undefined) {
    return {
      ok: false,
      failure: 'unknown-key',
      message: 'The security token included in the request is invalid.',
    };
  }
  const dateText = header(req, 'x-amz-date') ?? '';
  const date = amzDate(dateText);
  if (!date) {
    return {
      ok: false,
      failure: 'incomplete',
      message: 'Authorization header requires existence of either a X-Amz-Date or a Date header.',
    };
  }
  const skew = date.getTime() - now.getTime();
  if (Math.abs(skew) > MAX_SKEW_MS || dateText.slice(0, 8) !== day) {
    const stamp = (d: Date) => d.toISOString().replace(/[-:]|\.\d{3}/g, '');
    const edge = new Date(now.getTime() + (skew < 0 ? -MAX_SKEW_MS : MAX_SKEW_MS));
    return {
      ok: false,
      failure: 'expired',
      message:
        skew < 0
          ? `Signature expired: ${dateText} is now earlier than ${stamp(edge)} (${stamp(now)} - 15 min.)`
          : `Signature not yet current: ${dateText} is still later than ${stamp(edge)} (${stamp(now)} + 15 min.)`,
    };
  }
  const bodyHash = createHash('sha256').update(req.body).digest('hex');
  const claimed = header(req, 'x-amz-content-sha256');
  if (claimed === 'UNSIGNED-PAYLOAD' || claimed?.startsWith('STREAMING-')) {
    return {
      ok: false,
      failure: 'incomplete',
      message: `x-amz-content-sha256: ${claimed} is not accepted; sign the payload.`,
    };
  }
  if (claimed !== undefined && claimed !== bodyHash) {
    return {
      ok: false,
      failure: 'mismatch',
      message: 'The provided x-amz-content-sha256 header does not match what was computed.',
    };
  }
  const headers: Record<string, string> = {};
  for (const name of signed) {
    const v = header(req, name);
    if (v === undefined) {
      return {
        ok: false,
        failure: 'incomplete',
        message: `SignedHeaders names ${name}, which the request does not have.`,
      };
    }
    headers[name] = v;
  }
  // the signer reads the payload hash from this header when there is one
  if (signed.includes('x-amz-content-sha256')) headers['x-amz-content-sha256'] = bodyHash;
  const signer = new SignatureV4({
    credentials: { accessKeyId: keyId, secretAccessKey: secret },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: true,
    applyChecksum: false,
  });
  const ours = await signer.sign(
    {
      method: req.method,
      protocol: 'http:',
      hostname: headers.host ?? '',
      path: req.path,
      query: req.query,
      headers,
      body: req.body,
    },
    {
      signingDate: date,
      signingRegion: region,
      signingService: service,
      signableHeaders: new Set(signed),
    },
  );
  const got = /SignedHeaders=([^,]+), Signature=([0-9a-f]{64})/.exec(
    String(ours.headers.authorization ?? ''),
  );
  const same =
    got?.[1] === signedList &&
    timingSafeEqual(Buffer.from(got[2] ?? '', 'hex'), Buffer.from(signature, 'hex'));
  if (!same) {
    return {
      ok: false,
      failure: 'mismatch',
      message:
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    };
  }
  return { ok: true, keyId };
}
