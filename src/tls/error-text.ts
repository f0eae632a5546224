/**
 * What Node says about a failed TLS session, made fit for a reply, a queue
 * record, a DSN or a CLI sentence: Node 24 appends to some certificate
 * errors "; if the root CA is installed locally, try running Node.js with
 * --use-system-ca", advice about posta's own runtime that no reader of a
 * reply can act on. It is cut here, the one place such text passes.
 */

const NODE_HINT =
  /;? *if the root CA is installed locally, try running Node\.js with +--use-system-ca/g;

export function withoutNodeHint(text: string): string {
  return text.replace(NODE_HINT, '');
}

/**
 * Node's and OpenSSL's codes for a certificate that did not verify (as
 * opposed to a handshake that failed): self-signed, unknown issuer, expired,
 * another name.
 */
export function isCertificateError(code: string | undefined): boolean {
  return /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET_ISSUER|DECRYPT)|ALTNAME/.test(code ?? '');
}

/** Node's code for a certificate that is its own issuer (a self-signed leaf). */
export const SELF_SIGNED = 'DEPTH_ZERO_SELF_SIGNED_CERT';
