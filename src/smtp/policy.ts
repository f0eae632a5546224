/**
 * Who may send what, decided per envelope address (pure over the Directory).
 *
 * - Submission (587/465): the client is an authenticated principal
 *   (principal.ts). An account may use as envelope sender and in From only
 *   its own address, an alias that points straight at it (Gmail's "send mail
 *   as"), or, with send-as=domain, any address of its domain; an access key,
 *   any address of its domains that are local ones. Recipients may be
 *   anywhere.
 * - Inbound (25): recipients must be addresses of a local domain that resolve
 *   through an alias or the catch-all, or genuine SRS addresses (bounces of
 *   mail posta forwarded); anything else is refused at RCPT, so posta never
 *   relays and never has to bounce to a forged sender. The domainless
 *   "postmaster" stands for postmaster@ the local domain of the hostname
 *   (mail.example.com -> example.com), else the first local domain by name;
 *   it is taken only when that address resolves, like any other.
 *   unsubscribe+TOKEN@ a local domain, the mailto: of List-Unsubscribe, is
 *   taken without an alias, alone in its transaction (server.ts), and
 *   consumed at DATA (unsubscribe/mailto.ts).
 * - Sender-specified routing (RFC 5321 §3.6.1, appendix C) is never honoured:
 *   local parts with "%" or "!" are refused. Source routes ("@a:b@c") are
 *   stripped by smtp-server as the RFC asks, leaving "b@c" to these rules.
 */
import { domainOf, localPartOf, parseAddress, parseDomain } from '../address/address.ts';
import type { Directory } from '../domains/directory.ts';
import { isSrs, type Srs } from '../srs/srs.ts';
import { keyMaySendFrom } from '../keys/keys.ts';
import { unsubscribeAddressToken } from '../unsubscribe/mailto.ts';
import type { Principal } from './principal.ts';
import {
  C550AliasLoop,
  C550BadSrs,
  C550NoSuchUser,
  C550NotLocal,
  C550RoutingRefused,
  C553SenderNotAllowed,
  type SmtpReply,
} from './reply.ts';

export type Decision = { ok: true; address: string } | { ok: false; reply: SmtpReply };

/** Normal form of an envelope address: local part kept for remote domains, domain lower-cased A-labels. */
export function normaliseEnvelope(address: string, dir: Directory): string | null {
  const at = address.lastIndexOf('@');
  if (at <= 0) return null;
  const domain = parseDomain(address.slice(at + 1));
  if (!domain.ok) return null;
  if (dir.isLocal(domain.value)) {
    // SRS addresses posta made can be longer than 64 bytes (RFC 5321 §4.5.3.1.1
    // limit for mailboxes); bounces to them must still be taken.
    const local = address.slice(0, at);
    if (isSrs(local)) return `${local.toLowerCase()}@${domain.value}`;
    const a = parseAddress(address);
    return a.ok ? `${a.value.local}@${a.value.domain}` : null;
  }
  return `${address.slice(0, at)}@${domain.value}`;
}

export function checkRouting(address: string): SmtpReply | null {
  const local = address.slice(0, address.lastIndexOf('@'));
  if (/[%!@]/.test(local)) {
    return C550RoutingRefused(`<${address}>: sender-specified routing ("%", "!") is not supported`);
  }
  return null;
}

/** May the principal send as `address` (normalised)? */
export function maySendAs(p: Principal, address: string, dir: Directory): boolean {
  if (p.kind === 'key') return keyMaySendFrom(p.key, domainOf(address), (d) => dir.isLocal(d));
  const account = p.name;
  if (address === account) return true;
  const [aLocal, aDomain] = [localPartOf(account), domainOf(account)];
  const [local, domain] = [localPartOf(address), domainOf(address)];
  if (domain !== aDomain) return false;
  if (dir.account(aLocal, aDomain)?.sendAsDomain) return true;
  return dir.directAliasTargets(local, domain).includes(account);
}

/**
 * Why the principal may not send `what` ("as <a@b>", "with From: a@b"): an
 * account is named, a key with the domains it may send from.
 */
export function refusalText(p: Principal, what: string, dir: Directory): string {
  if (p.kind === 'account') return `${p.name} may not send ${what}`;
  const usable = p.key.domains.filter((d) => dir.isLocal(d));
  return usable.length
    ? `${p.name} may send from ${usable.join(', ')} only, not ${what}`
    : `${p.name} may send from none of this server's domains (it has ${p.key.domains.join(', ')}), not ${what}`;
}

export function checkSender(p: Principal, address: string, dir: Directory): Decision {
  const norm = address === '' ? null : normaliseEnvelope(address, dir);
  if (norm === null || !maySendAs(p, norm, dir)) {
    const hint = p.kind === 'account' ? '; use your own address as sender' : '';
    return {
      ok: false,
      reply: C553SenderNotAllowed(`${refusalText(p, `as <${address}>`, dir)}${hint}`),
    };
  }
  return { ok: true, address: norm };
}

export function checkSubmissionRecipient(address: string, dir: Directory): Decision {
  const routing = checkRouting(address);
  if (routing) return { ok: false, reply: routing };
  const norm = normaliseEnvelope(address, dir);
  if (norm === null) {
    return { ok: false, reply: C550NoSuchUser(`<${address}> is not a valid address`) };
  }
  return { ok: true, address: norm };
}

/**
 * The local domain whose postmaster the domainless "postmaster" is: the
 * hostname or the nearest parent of it that is local, else the first local
 * domain by name; null when there is none.
 */
export function postmasterDomain(hostname: string, dir: Directory): string | null {
  const labels = hostname.toLowerCase().split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const d = labels.slice(i).join('.');
    if (dir.isLocal(d)) return d;
  }
  return dir.names().sort()[0] ?? null;
}

export function checkInboundRecipient(
  given: string,
  dir: Directory,
  srs: Srs,
  hostname: string,
): Decision {
  // RFC 5321 §4.5.1 (and §4.1.1.3): "postmaster" without a domain must be
  // accepted, case-insensitively; it goes where postmaster@ our domain goes.
  const pmDomain = given.toLowerCase() === 'postmaster' ? postmasterDomain(hostname, dir) : null;
  const address = pmDomain ? `postmaster@${pmDomain}` : given;
  const routing = checkRouting(address);
  if (routing) return { ok: false, reply: routing };
  const norm = normaliseEnvelope(address, dir);
  const domain = norm ? domainOf(norm) : '';
  if (norm === null || !dir.isLocal(domain)) {
    return {
      ok: false,
      reply: C550NotLocal(
        `<${address}>: relaying denied; this server accepts mail only for its own domains`,
      ),
    };
  }
  const local = localPartOf(norm);
  // the mailto: of one-click unsubscribe, whatever the aliases say (unsubscribe/mailto.ts)
  if (unsubscribeAddressToken(norm) !== null) return { ok: true, address: norm };
  if (isSrs(local)) {
    // A bounce to an address posta forwarded from: only genuine, fresh ones.
    const r = srs.reverse(norm);
    if (!r.ok) return { ok: false, reply: C550BadSrs(`<${address}>: ${r.reason}`) };
    return { ok: true, address: norm };
  }
  if (dir.resolve(norm).length === 0) {
    if (dir.hasAlias(norm)) {
      return {
        ok: false,
        reply: C550AliasLoop(`<${address}>: its aliases lead only to each other`),
      };
    }
    return { ok: false, reply: C550NoSuchUser(`<${address}>: no such recipient here`) };
  }
  return { ok: true, address: norm };
}
