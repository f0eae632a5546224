/**
 * The principal of a submission session (587, 465): who logged in, and so
 * whom it may send as. smtp-server keeps it as the session's user, a string
 * that is one of:
 *
 * - an account's address, local@domain (users/): it may send as itself, an
 *   alias pointing straight at it, or, with send-as=domain, any address of
 *   its domain;
 * - an access key id (keys/keys.ts isKeyId; it has no "@", so it is never
 *   an address): it may send as any address of its domains that are still
 *   local ones, as through the HTTP APIs (api/send.ts), and what it sends
 *   counts in its quota (keys/quota.ts).
 *
 * The rules themselves are policy.ts's (maySendAs). A key is looked up again
 * at each use, so one revoked during a session stops there.
 */
import { isKeyId, type ApiKey, type KeyStore } from '../keys/keys.ts';
import { C530AuthRequired } from './reply.ts';

export type Principal =
  { kind: 'account'; name: string } | { kind: 'key'; name: string; key: ApiKey };

/** The principal a session's user stands for; throws the SmtpReply for a key revoked since. */
export function principalOf(user: string, keys: Pick<KeyStore, 'get'>): Principal {
  if (!isKeyId(user)) return { kind: 'account', name: user };
  const key = keys.get(user);
  if (!key) throw C530AuthRequired(`Access key ${user} has been revoked`);
  return { kind: 'key', name: user, key };
}
