/**
 * Where things live in the config folder (PRODUCT.md, "The config folder"):
 *   domains/DOMAIN/users, domains/DOMAIN/aliases, domains/DOMAIN/dkim/*.key
 * DOMAIN is the lower-case A-label form.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PostaError } from '../errors.ts';
import { displayDomain } from '../address/address.ts';

export const domainDir = (dir: string, domain: string) => join(dir, 'domains', domain);
export const usersFile = (dir: string, domain: string) => join(domainDir(dir, domain), 'users');
export const aliasesFile = (dir: string, domain: string) => join(domainDir(dir, domain), 'aliases');
export const dkimDir = (dir: string, domain: string) => join(domainDir(dir, domain), 'dkim');
/** The dashboard's admin password hash (`posta admin password`). */
export const adminPasswordFile = (dir: string) => join(dir, 'admin-password');

/**
 * The config folder of the service installed on this machine: /etc/posta,
 * the symlink to it that `posta install-service` makes. posta run as
 * /usr/sbin/sendmail uses it when neither --dir nor $POSTA_DIR is given
 * (cron sets neither). $POSTA_CONFIG_LINK names another place (for tests).
 */
export function serviceDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.POSTA_CONFIG_LINK || '/etc/posta';
}

/** The error for a --dir without a posta.toml: how to make one or point elsewhere. */
export function noConfigFolder(dir: string): PostaError {
  return new PostaError(
    `There is no ${join(dir, 'posta.toml')}; create the config folder with \`posta init DOMAIN --hostname HOST --dir ${dir}\` or point --dir (or $POSTA_DIR) at an existing one.`,
  );
}

/** Throws noConfigFolder() unless DIR holds a posta.toml. */
export async function requireConfigFolder(dir: string): Promise<void> {
  if (!(await stat(join(dir, 'posta.toml')).catch(() => null))) throw noConfigFolder(dir);
}

/** Throws a PostaError naming `posta init` unless DOMAIN is a local domain. */
export async function requireDomain(dir: string, domain: string): Promise<void> {
  await requireConfigFolder(dir);
  try {
    if ((await stat(domainDir(dir, domain))).isDirectory()) return;
  } catch {
    // fall through
  }
  throw new PostaError(
    `${displayDomain(domain)} is not a domain of the posta config in ${dir}; add it with \`posta init ${domain} --dir ${dir}\`.`,
  );
}
