// The parts of mailauth's DKIM implementation that src/dkim/sign.ts drives
// directly, and the key reader src/verify/seal-key.ts wraps (mailauth ships
// no types for these internal modules).
declare module 'mailauth/lib/dkim/body/index.js' {
  export function dkimBody(
    canonicalization: string,
    hashAlgo: string,
    maxBodyLength: number | false,
  ): { update(chunk: Buffer): void; digest(encoding: 'base64'): string };
}
declare module 'mailauth/lib/dkim/header/index.js' {
  export function generateCanonicalizedHeader(
    type: 'DKIM' | 'ARC',
    signingHeaderLines: { keys: string; headers: unknown[] },
    options: Record<string, unknown>,
  ): { canonicalizedHeader: Buffer; dkimHeaderOpts: Record<string, unknown> };
}
declare module 'mailauth/lib/tools.js' {
  import type { KeyObject } from 'node:crypto';
  export const defaultDKIMFieldNames: string;
  export function parseHeaders(buf: Buffer): { parsed: unknown[] };
  export function getSigningHeaderLines(
    parsed: unknown[],
    fieldNames: string,
  ): { keys: string; headers: unknown[] };
  export function formatSignatureHeaderLine(
    type: 'DKIM' | 'ARC',
    values: Record<string, unknown>,
    folded: boolean,
  ): string;
  /** A domain of `domainList` that aligns with `domain` (same Organizational Domain unless strict), else false. */
  export function getAlignment(
    domain: string,
    domainList: string[],
    strict: boolean,
  ): { domain: string } | false;
  /** The module object itself, whose getPrivateKey src/verify/seal-key.ts wraps. */
  const tools: { getPrivateKey: (key: unknown) => KeyObject };
  export default tools;
}
