/**
 * The mailto: of List-Unsubscribe: unsubscribe+TOKEN@DOMAIN, for any local
 * DOMAIN, taken on port 25 without an alias (smtp/policy.ts accepts it at
 * RCPT, alone in its transaction) and consumed, never forwarded or queued:
 * a mail to it unsubscribes the recipient its token names (unsubscribe.ts),
 * whoever sends it, as the https link does (RFC 8058 §3.1: the token is the
 * credential, and a receiver such as Gmail sends it from the user's
 * address, which may be an alias of the one the message went to).
 */
import { domainOf, localPartOf } from '../address/address.ts';
import { TOKEN_LENGTH } from './token.ts';
import { unsubscribe, type UnsubscribeDeps } from './unsubscribe.ts';

const LOCAL = new RegExp(`^unsubscribe\\+([a-z2-7]{${TOKEN_LENGTH}})$`, 'i');

/** The token of an unsubscribe address (any domain: the caller checks it is local), else null. */
export function unsubscribeAddressToken(address: string): string | null {
  return LOCAL.exec(localPartOf(address))?.[1]?.toLowerCase() ?? null;
}

/** Unsubscribes for a mail to `address`; false when posta never gave that address out. */
export async function takeUnsubscribeMail(
  deps: UnsubscribeDeps,
  address: string,
  id: string,
): Promise<boolean> {
  const token = unsubscribeAddressToken(address);
  const link = token ? await deps.store.unsubscribeLink(token) : undefined;
  if (!link || link.domain !== domainOf(address)) {
    deps.log.info({ qid: id, rcpt: address }, 'unsubscribe mail to an address posta never gave');
    return false;
  }
  await unsubscribe(deps, link, 'mailto');
  return true;
}
