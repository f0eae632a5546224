/**
 * Inbound verification of mail arriving on port 25, with mailauth: SPF
 * (RFC 7208), DKIM (RFC 6376), DMARC (RFC 7489) and the ARC chain of earlier
 * hops (RFC 8617), written into one `Authentication-Results: <hostname>; ...`
 * field (RFC 8601), and an ARC set sealed with the forwarding domain's key,
 * so the receiver of the forwarded copy can see what posta saw.
 *
 * - Authentication-Results fields that claim our hostname as authserv-id come
 *   from outside and are removed before anything is checked or sealed
 *   (RFC 8601 §5).
 * - DMARC `p=reject` failures are refused at the end of DATA (550 5.7.1) when
 *   `[inbound] dmarc_reject` is on; when a DNS lookup failed temporarily, the
 *   answer is 451 4.7.0 instead, never a 5xx.
 * - Mail From one of our own domains must pass DMARC, whatever policy the
 *   domain publishes: posta would otherwise forward a forgery with an SRS
 *   sender of that same domain, and it would pass DMARC at the receiver.
 * - Whether the envelope sender is verified, for bounces (no backscatter):
 *   SPF passed for its domain, or a passing DKIM signature's domain aligns
 *   with it (same Organizational Domain, as DMARC's relaxed alignment).
 */
// first: it must run before mailauth's signer loads (see the file)
import { sealKey } from './seal-key.ts';
import { domainOf } from '../address/address.ts';
import { authenticate } from 'mailauth';
import { getAlignment } from 'mailauth/lib/tools.js';
import type { AuthenticateResult, DNSResolver } from 'mailauth';
import type { ResolveFn } from '../dns/resolver.ts';
import { messageStream, type Held } from '../message/held.ts';

export interface InboundInput {
  /** The header in memory, the body in memory or in a file: read as a stream. */
  message: Held;
  ip: string;
  helo: string;
  /** The envelope sender; "" for the null sender. */
  sender: string;
  hostname: string;
  resolve: ResolveFn;
  /** The forwarding domain and its RSA key (selector, PEM), to seal with. */
  seal?: { domain: string; key: { selector: string; pem: string } };
  dmarcReject: boolean;
  /** Our own domains: mail From them must pass DMARC, whatever they publish. */
  localDomains: readonly string[];
}

export interface InboundResult {
  /** Header fields to put on top of the message: ARC set, Authentication-Results. */
  headers: string;
  /** The message's header section with forged Authentication-Results removed. */
  head: Buffer;
  refuse?: { code: number; enhanced: string; text: string };
  /** For the log: pass, fail, none, ... per method. */
  summary: { spf: string; dkim: string; dmarc: string; arc: string };
  /** Why a requested ARC seal was not added (the message goes on unsealed). */
  sealError?: string;
  /** The envelope sender's SPF result, and "pass" when a DKIM pass aligns with its domain. */
  senderAuth: SenderAuth;
}

/** What was verified of an inbound envelope sender; a bounce goes to it only if either passed. */
export interface SenderAuth {
  spf: string;
  /** pass (aligned with the sender's domain), unaligned (a pass of another domain), fail, none... */
  dkim: string;
}

export async function verifyInbound(i: InboundInput): Promise<InboundResult> {
  const head = stripForgedResults(i.message.head, i.hostname);
  const message = messageStream({ head, body: i.message.body });
  const result: AuthenticateResult = await authenticate(message, {
    ip: i.ip,
    helo: i.helo,
    sender: i.sender,
    mta: i.hostname,
    resolver: i.resolve as DNSResolver,
    disableBimi: true,
    seal: i.seal && {
      signingDomain: i.seal.domain,
      selector: i.seal.key.selector,
      privateKey: sealKey(i.seal.key.pem) as string, // a KeyObject when mailauth takes one
    },
  });
  const spf = result.spf ? result.spf.status.result : 'none';
  const dkimResults = result.dkim.results.map((r) => r.status.result);
  const dkim = dkimResults.includes('pass') ? 'pass' : (dkimResults[0] ?? 'none');
  const dmarc = result.dmarc ? result.dmarc.status.result : 'none';
  const arc = result.arc ? result.arc.status.result : 'none';
  const out: InboundResult = {
    headers: result.headers,
    head,
    summary: { spf, dkim, dmarc, arc },
    senderAuth: { spf, dkim: senderDkim(i.sender, result) },
  };
  const sealErrors = result.arc ? result.arc.sealErrors : undefined;
  if (sealErrors?.length) {
    out.sealError = sealErrors.map((e) => e.err.code ?? e.err.message).join(', ');
  }
  const fromDomains = result.dkim.headerFrom.map((a) => domainOf(a));
  const ours = fromDomains.find((d) => i.localDomains.includes(d));
  if (ours && dmarc !== 'pass') {
    out.refuse =
      dmarc === 'temperror'
        ? { code: 451, enhanced: '4.7.0', text: `DNS lookups for ${ours} failed; try again later` }
        : {
            code: 550,
            enhanced: '5.7.1',
            text: `Mail From ${ours} must pass DMARC here (it is ${dmarc}); send it through submission with an account`,
          };
    return out;
  }
  if (i.dmarcReject && result.dmarc && dmarc === 'fail' && result.dmarc.policy === 'reject') {
    const temporary = spf === 'temperror' || dkimResults.includes('temperror');
    const from = result.dmarc.status.header?.from ?? 'the From domain';
    out.refuse = temporary
      ? { code: 451, enhanced: '4.7.0', text: `DNS lookups for ${from} failed; try again later` }
      : {
          code: 550,
          enhanced: '5.7.1',
          text: `Rejected by the DMARC policy of ${from}: neither SPF nor DKIM passes aligned`,
        };
  }
  return out;
}

/** The DKIM result for the envelope sender: pass only for a signature aligned with its domain. */
function senderDkim(sender: string, result: AuthenticateResult): string {
  const passed = result.dkim.results.filter((r) => r.status.result === 'pass');
  const domain = sender.includes('@') ? domainOf(sender) : '';
  const signers = passed.map((r) => r.signingDomain).filter((d): d is string => !!d);
  if (domain && signers.length && getAlignment(domain, signers, false)) return 'pass';
  if (passed.length) return 'unaligned';
  return result.dkim.results[0]?.status.result ?? 'none';
}

/** Drop Authentication-Results fields whose authserv-id is our hostname. */
export function stripForgedResults(message: Buffer, hostname: string): Buffer {
  const end = message.indexOf('\r\n\r\n');
  const head = (end < 0 ? message : message.subarray(0, end + 2)).toString('latin1');
  const fields = head.split(/\r\n(?![ \t])/).filter((f) => f !== '');
  // RFC 8601 §2.2: authserv-id, optionally a version, comments (CFWS) anywhere around.
  const ours = new RegExp(
    `^authentication-results:\\s*(\\([^)]*\\)\\s*)*${escape(hostname)}(\\s*\\([^)]*\\))*(\\s+\\d+)?\\s*(\\([^)]*\\)\\s*)*(;|$)`,
    'i',
  );
  const kept = fields.filter((f) => !ours.test(f));
  if (kept.length === fields.length) return message;
  const rest = end < 0 ? Buffer.alloc(0) : message.subarray(end + 2);
  return Buffer.concat([Buffer.from(kept.map((f) => `${f}\r\n`).join(''), 'latin1'), rest]);
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
