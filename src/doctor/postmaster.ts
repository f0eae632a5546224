/**
 * Doctor check on the mailboxes other servers write to:
 *   postmaster  postmaster@DOMAIN (RFC 5321 §4.5.1; where the DMARC and
 *               TLS-RPT records send reports) and abuse@DOMAIN (RFC 2142 §2)
 *               are aliased to a mailbox, straight or through the catch-all,
 *               so that port 25 takes mail for them.
 * Resolution is the server's own (aliases/resolve.ts) over every local domain
 * of the config folder, read from disk.
 */
import { listDomains } from '../config/load.ts';
import { aliasesFile } from '../config/paths.ts';
import { readAliases, ROLE_ALIASES, type Alias } from '../aliases/aliases.ts';
import { resolveAddress } from '../aliases/resolve.ts';
import { fail, pass, type CheckResult } from './report.ts';

export async function checkPostmaster(dir: string, domain: string): Promise<CheckResult> {
  const aliases = new Map<string, readonly Alias[]>();
  for (const d of await listDomains(dir)) {
    aliases.set(d, (await readAliases(aliasesFile(dir, d), d)).aliases());
  }
  const found = ROLE_ALIASES.map((local) => {
    const address = `${local}@${domain}`;
    return { address, to: resolveAddress(address, (d) => aliases.get(d)) };
  });
  const missing = found.filter((f) => f.to.length === 0).map((f) => f.address);
  if (missing.length === 0) {
    return pass('postmaster', found.map((f) => `${f.address} → ${f.to.join(', ')}`).join('; '));
  }
  return fail(
    'postmaster',
    `${missing.join(' and ')} ${missing.length > 1 ? 'go' : 'goes'} nowhere (no alias, no catch-all): mail and reports to ${missing.length > 1 ? 'them' : 'it'} are refused`,
    missing.map((a) => `posta alias add ${a} YOU@ELSEWHERE`).join(', and '),
  );
}
