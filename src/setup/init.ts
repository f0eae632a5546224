/**
 * `posta init`: create the config folder, or add a domain to one. A new
 * domain's folder (users, aliases, DKIM keys) is built under a temporary name
 * and renamed into place, so an interrupted init leaves nothing half-made, and
 * an existing domain, its keys and its accounts are never touched. With a
 * forward address, the new aliases file sends postmaster@ and abuse@ there
 * (RFC 2142 mailboxes; the DMARC and TLS-RPT records report to postmaster@).
 */
import { mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PostaError } from '../errors.ts';
import { displayDomain } from '../address/address.ts';
import { CONFIG_FILE, loadConfig, type ResolvedConfig } from '../config/load.ts';
import { configTemplate } from '../config/template.ts';
import { domainDir } from '../config/paths.ts';
import { writeFileAtomic, fsyncDir } from '../fsutil/atomic.ts';
import { makeDirs } from '../fsutil/mkdir.ts';
import { fsErrorSentence } from '../fsutil/errors.ts';
import { generateKeys, type DkimKey } from '../dkim/keys.ts';
import { loadSrsSecret } from '../srs/srs.ts';
import { USERS_HEADER } from '../users/userdb.ts';
import { ALIASES_HEADER, AliasFile, ROLE_ALIASES } from '../aliases/aliases.ts';

export interface InitResult {
  config: ResolvedConfig;
  createdConfig: boolean;
  keys: DkimKey[];
}

export async function initDomain(opts: {
  dir: string;
  domain: string;
  hostname: string | undefined;
  /** Where postmaster@ and abuse@ of the new domain go (a full address); none: no alias. */
  forward?: string;
  /** Extra posta.toml values for a new config (the sandbox uses this). */
  values?: Record<string, unknown>;
}): Promise<InitResult> {
  const { dir, domain } = opts;
  const file = join(dir, CONFIG_FILE);
  const createdConfig = !(await exists(file));
  if (createdConfig) {
    try {
      makeDirs(dir);
    } catch (err) {
      throw new PostaError(fsErrorSentence(err, 'the config folder') ?? (err as Error).message);
    }
    const hostname = opts.hostname ?? `mail.${domain}`;
    await writeFileAtomic(file, configTemplate({ hostname, ...opts.values }));
    if (!(await exists(join(dir, '.gitignore')))) {
      await writeFileAtomic(join(dir, '.gitignore'), '# runtime state: never commit\n/data/\n');
    }
    await loadSrsSecret(dir);
  }
  const before = await loadConfig(dir);
  if (opts.hostname !== undefined && opts.hostname !== before.hostname) {
    throw new PostaError(
      `${file} already sets hostname = "${before.hostname}"; edit it there to change it, or leave out --hostname.`,
    );
  }
  const target = domainDir(dir, domain);
  if (await exists(target)) {
    throw new PostaError(
      `${displayDomain(domain)} is already set up in ${dir}; \`posta dns ${domain}\` prints its records${opts.forward === undefined ? '' : `, \`posta alias add postmaster@${domain} ${opts.forward}\` forwards its postmaster`}.`,
    );
  }
  const domainsDir = join(dir, 'domains');
  makeDirs(domainsDir);
  const tmp = await mkdtemp(join(domainsDir, `.${domain}.`));
  let keys: DkimKey[];
  try {
    await writeFileAtomic(join(tmp, 'users'), `${USERS_HEADER.join('\n')}\n`, 0o640);
    await writeFileAtomic(join(tmp, 'aliases'), aliasesText(domain, opts.forward));
    const made = await generateKeys(join(tmp, 'dkim'));
    await rename(tmp, target);
    keys = made.map((k) => ({ ...k, file: k.file.replace(tmp, target) }));
    await fsyncDir(domainsDir);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  return { config: await loadConfig(dir), createdConfig, keys };
}

/** A new domain's aliases file: the header, and postmaster and abuse when forwarded. */
function aliasesText(domain: string, forward: string | undefined): string {
  const file = AliasFile.parse('aliases', domain, `${ALIASES_HEADER.join('\n')}\n`);
  if (forward !== undefined) for (const local of ROLE_ALIASES) file.add(local, [forward]);
  return file.toString();
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
