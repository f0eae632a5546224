/**
 * Account operations over the config folder: add, delete, change password,
 * list and authenticate. Addresses arrive as text and are normalised here;
 * an address of a domain the folder does not have is refused.
 */
import { PostaError } from '../errors.ts';
import { formatAddress, parseAddress, type Address } from '../address/address.ts';
import { requireConfigFolder, requireDomain, usersFile } from '../config/paths.ts';
import { listDomains } from '../config/load.ts';
import { hashPassword, needsRehash, verifyOrDelay } from './hash.ts';
import type { HashGate } from './gate.ts';
import { editUsers, readUsers, type Account } from './userdb.ts';

export function parseAccountAddress(text: string): Address {
  const a = parseAddress(text);
  if (!a.ok) throw new PostaError(`${a.error}.`);
  return a.value;
}

/** Submission is on the internet: a password must not fall to a short guessing run. */
export const MIN_PASSWORD_LENGTH = 8;

function checkNewPassword(password: string): void {
  const n = [...password].length;
  if (n < MIN_PASSWORD_LENGTH) {
    throw new PostaError(
      `A password needs at least ${MIN_PASSWORD_LENGTH} characters (this one has ${n}); posta user add with no --password asks for one.`,
    );
  }
}

export async function addUser(
  dir: string,
  address: string,
  password: string,
  opts: { sendAsDomain: boolean },
): Promise<void> {
  const a = parseAccountAddress(address);
  await requireDomain(dir, a.domain);
  checkNewPassword(password);
  const hash = await hashPassword(password);
  await editUsers(usersFile(dir, a.domain), (users) => {
    if (users.get(a.local)) {
      throw new PostaError(
        `${formatAddress(a)} already exists; change its password with \`posta user passwd ${formatAddress(a)}\`.`,
      );
    }
    users.set({ local: a.local, hash, sendAsDomain: opts.sendAsDomain });
  });
}

export async function changePassword(
  dir: string,
  address: string,
  password: string,
): Promise<void> {
  const a = parseAccountAddress(address);
  await requireDomain(dir, a.domain);
  checkNewPassword(password);
  const hash = await hashPassword(password);
  await editUsers(usersFile(dir, a.domain), (users) => {
    const existing = users.get(a.local);
    if (!existing) throw noSuchUser(a);
    users.set({ ...existing, hash });
  });
}

/**
 * After a good login with a hash of an older scheme (`needsRehash`), write the
 * password's hash with today's parameters, as `posta user passwd` writes it
 * (same lock, atomic replace keeping the file's owner and mode). Nothing is
 * written when the hash in the file is no longer `oldHash` (changed meanwhile).
 * The new hash, or null when there was nothing to do.
 */
export async function upgradeHash(
  dir: string,
  a: Address,
  password: string,
  oldHash: string,
  gate: HashGate,
): Promise<string | null> {
  if (!needsRehash(oldHash)) return null;
  const hash = await gate.run(() => hashPassword(password));
  return editUsers(usersFile(dir, a.domain), (users) => {
    const existing = users.get(a.local);
    if (existing?.hash !== oldHash) return null;
    users.set({ ...existing, hash });
    return hash;
  });
}

export async function deleteUser(dir: string, address: string): Promise<void> {
  const a = parseAccountAddress(address);
  await requireDomain(dir, a.domain);
  await editUsers(usersFile(dir, a.domain), (users) => {
    if (!users.delete(a.local)) throw noSuchUser(a);
  });
}

export async function listUsers(
  dir: string,
  domain?: string,
): Promise<{ address: string; account: Account }[]> {
  if (domain) await requireDomain(dir, domain);
  else await requireConfigFolder(dir);
  const domains = domain ? [domain] : await listDomains(dir);
  const out = [];
  for (const d of domains) {
    for (const account of (await readUsers(usersFile(dir, d))).accounts()) {
      out.push({ address: `${account.local}@${d}`, account });
    }
  }
  return out;
}

/** The account of `address` as its users file has it now, or null when there is none. */
export async function findAccount(dir: string, address: string): Promise<Account | null> {
  const a = parseAddress(address);
  if (!a.ok) return null;
  const users = await readUsers(usersFile(dir, a.value.domain)).catch(() => null);
  return users?.get(a.value.local) ?? null;
}

/** The account when the password is right, null otherwise (unknown or wrong). */
export async function authenticate(
  dir: string,
  address: string,
  password: string,
): Promise<Account | null> {
  const account = await findAccount(dir, address);
  const ok = await verifyOrDelay(password, account?.hash);
  return ok && account ? account : null;
}

function noSuchUser(a: Address): PostaError {
  return new PostaError(
    `There is no account ${formatAddress(a)}; \`posta user list\` shows the accounts.`,
  );
}
