/**
 * What one delivery attempt means for one recipient. Transient vs permanent is
 * in the type (RFC 5321 §4.2.1: 4yz is "try again later", 5yz is "never"), so
 * the queue never has to guess from a reply string.
 */
import { withoutNodeHint } from '../tls/error-text.ts';

export interface Reply {
  code: number;
  /** RFC 3463 enhanced status, e.g. "5.1.1". */
  enhanced: string;
  text: string;
}

export type Outcome =
  | { kind: 'delivered'; reply: Reply }
  | { kind: 'transient'; reply: Reply }
  | { kind: 'permanent'; reply: Reply };

/** Where and how an attempt talked to a receiving server, for the delivery log. */
export interface AttemptInfo {
  /** The MX host name (or relay host) tried last. */
  mx?: string;
  ip?: string;
  /** Negotiated TLS version ("TLSv1.3"), absent when the session was plaintext. */
  tls?: string;
  /** Whether the server's certificate verified for the MX name. */
  tlsVerified?: boolean;
  /** True when the attempt went over a connection kept open from an earlier message. */
  reused?: boolean;
}

export function formatReply(r: Reply): string {
  return `${r.code} ${r.enhanced} ${r.text}`.trim();
}

/**
 * Parse a server reply ("550 5.1.1 no such user", possibly multi-line), or
 * use `fallbackCode` for text that is not a reply. RFC 3463 §2: the enhanced
 * code repeats on each line of a multi-line reply; it is kept once.
 */
export function parseReply(text: string | undefined | false, fallbackCode?: number): Reply | null {
  if (!text) return null;
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== '');
  const first = /^(\d{3})(?:[ -]|$)(?:([245]\.\d{1,3}\.\d{1,3})(?:\s+|$))?/.exec(lines[0] ?? '');
  if (!first) {
    if (!fallbackCode) return null;
    const oneLine = lines.join(' ').trim();
    return { code: fallbackCode, enhanced: defaultEnhanced(fallbackCode), text: oneLine };
  }
  const code = Number(first[1]);
  const enhanced = first[2];
  const body = lines.map((l) => {
    let rest = l.replace(/^\d{3}[ -]?/, '');
    if (enhanced && rest.startsWith(enhanced)) rest = rest.slice(enhanced.length);
    return rest.trim();
  });
  return { code, enhanced: enhanced ?? defaultEnhanced(code), text: body.join(' ').trim() };
}

function defaultEnhanced(code: number): string {
  return code >= 500 ? '5.0.0' : code >= 400 ? '4.0.0' : '2.0.0';
}

/**
 * An outcome decided by posta itself (DNS, policy, connection failures). Its
 * text often quotes a Node error: Node's advice to itself is cut, so the
 * reply, the queue record and the DSN quote only what happened.
 */
export function local(kind: 'transient' | 'permanent', enhanced: string, text: string): Outcome {
  const reply = { code: kind === 'transient' ? 451 : 550, enhanced, text: withoutNodeHint(text) };
  return { kind, reply };
}

export function fromReply(reply: Reply): Outcome {
  if (reply.code >= 200 && reply.code < 300) return { kind: 'delivered', reply };
  if (reply.code >= 500) return { kind: 'permanent', reply };
  return { kind: 'transient', reply };
}
