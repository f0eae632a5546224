/**
 * ACME challenges waiting to be validated, shared between the ACME client
 * (which adds and removes them) and the listeners that answer the CA:
 * http-01 tokens on port 80 (RFC 8555 §8.3) and tls-alpn-01 certificates on
 * the https listener (RFC 8737).
 */
import type { SecureContext } from 'node:tls';

export class Challenges {
  /** http-01: token → key authorization. */
  readonly http = new Map<string, string>();
  /** tls-alpn-01: name → the self-signed acmeIdentifier certificate. */
  readonly alpn = new Map<string, SecureContext>();
}
