/**
 * The originator check of SMTP submission (587, 465): the From and Sender
 * fields read strictly (message/originator.ts), refused with 550 5.6.0 when
 * they are not each one unambiguous mailbox, and with 550 5.7.1 when the
 * principal (an account or an access key, principal.ts) may not use one of
 * their addresses (the rule of MAIL FROM, policy.ts). What passes is what
 * the DKIM signature of the From domain vouches for.
 */
import { domainOf } from '../address/address.ts';
import type { Directory } from '../domains/directory.ts';
import { readOriginator } from '../message/originator.ts';
import { maySendAs, normaliseEnvelope, refusalText } from './policy.ts';
import type { Principal } from './principal.ts';
import { C550BadHeader, C550FromNotAllowed } from './reply.ts';

/** The normalised domain of the first From mailbox, once From and Sender pass; throws the SmtpReply otherwise. */
export function checkOriginator(header: Buffer, p: Principal, dir: Directory): string {
  const r = readOriginator(header);
  if (!r.ok) throw C550BadHeader(r.problem);
  const { from, sender } = r.value;
  const fields = [
    ...from.map((m) => ({ field: 'From', address: m.address })),
    ...(sender ? [{ field: 'Sender', address: sender.address }] : []),
  ];
  let fromDomain: string | undefined;
  for (const { field, address } of fields) {
    const norm = normaliseEnvelope(address, dir);
    if (norm === null || !maySendAs(p, norm, dir)) {
      throw C550FromNotAllowed(refusalText(p, `with ${field}: ${address}`, dir));
    }
    fromDomain ??= domainOf(norm);
  }
  // readOriginator gives at least one From mailbox.
  return fromDomain ?? '';
}
