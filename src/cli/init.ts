import { stat } from 'node:fs/promises';
import { UsageError } from '../errors.ts';
import { parseAddress, parseDomain, formatAddress } from '../address/address.ts';
import { domainDir } from '../config/paths.ts';
import { initDomain } from '../setup/init.ts';
import { askLine } from './ask.ts';
import { positionals, str, type Command } from './command.ts';
import { printRecords } from './dns.ts';

export function domainArg(text: string): string {
  const d = parseDomain(text);
  if (!d.ok) throw new UsageError(`${d.error}.`);
  return d.value;
}

/** A --forward address: one full mailbox outside the domain being set up. */
function forwardArg(text: string, domain: string): string {
  const a = parseAddress(text.trim());
  if (!a.ok) throw new UsageError(`--forward: ${a.error}.`);
  if (a.value.local.includes('*')) {
    throw new UsageError(`--forward ${text} is a wildcard; give one mailbox (me@gmail.com, say).`);
  }
  if (a.value.domain === domain) {
    throw new UsageError(
      `--forward ${text} is in ${domain} itself; give a mailbox elsewhere (me@gmail.com, say).`,
    );
  }
  return formatAddress(a.value);
}

/**
 * Where postmaster@ and abuse@ go: --forward, else the answer on a terminal
 * (asked again after a bad one); undefined when skipped. Standard input that
 * is not a terminal is never read.
 */
async function forwardTo(
  flag: string | undefined,
  domain: string,
  dir: string,
): Promise<string | undefined> {
  if (flag !== undefined) return forwardArg(flag, domain);
  if (!process.stdin.isTTY) return undefined;
  const existing = await stat(domainDir(dir, domain)).then(
    () => true,
    () => false,
  );
  if (existing) return undefined; // initDomain says it is set up already
  for (;;) {
    const answer = await askLine(
      `Forward mail for postmaster@${domain} and abuse@${domain} to (empty: skip): `,
    );
    if (answer === '') return undefined;
    try {
      return forwardArg(answer, domain);
    } catch (err) {
      process.stderr.write(`${(err as Error).message.replace(/^--forward:? /, '')}\n`);
    }
  }
}

export const init: Command = {
  name: 'init',
  help: `Usage: posta init DOMAIN [--hostname HOST] [--forward ADDRESS] [--dir DIR]

Creates the config folder DIR (default ./posta or $POSTA_DIR) with posta.toml,
domains/DOMAIN/{users,aliases} and two DKIM keys (RSA-2048 and Ed25519), then
prints the DNS records to publish. Run it again with another DOMAIN to add that
domain; existing domains, keys, accounts and aliases are never changed.

The DMARC and TLS-RPT records send reports to postmaster@DOMAIN, and other
servers expect postmaster@ and abuse@ to reach someone: --forward writes
"postmaster: ADDRESS" and "abuse: ADDRESS" to the new domain's aliases file.
Without it, init asks on a terminal (an empty answer skips); from a script it
asks nothing and says which \`posta alias add\` to run.

  --hostname HOST     the server's name (EHLO, certificate, PTR); default mail.DOMAIN
  --forward ADDRESS   where mail to postmaster@DOMAIN and abuse@DOMAIN goes (me@gmail.com)`,
  options: { hostname: { type: 'string' }, forward: { type: 'string' } },
  async run(args) {
    const [domainText = ''] = positionals(this, args, ['DOMAIN']);
    const domain = domainArg(domainText);
    const hostnameText = str(args, 'hostname');
    const hostname = hostnameText === undefined ? undefined : domainArg(hostnameText);
    const forward = await forwardTo(str(args, 'forward'), domain, args.dir);
    const result = await initDomain({ dir: args.dir, domain, hostname, forward });
    const { config } = result;
    const out = process.stdout;
    if (result.createdConfig) out.write(`Created ${config.file} (hostname ${config.hostname}).\n`);
    out.write(
      `Added ${domain} with DKIM keys ${result.keys.map((k) => k.selector).join(' and ')}.\n`,
    );
    out.write(
      forward === undefined
        ? `postmaster@${domain} and abuse@${domain} reach no one yet: run \`posta alias add postmaster@${domain} ADDRESS --dir ${args.dir}\` (and the same for abuse@${domain}).\n\n`
        : `Mail to postmaster@${domain} and abuse@${domain} is forwarded to ${forward}.\n\n`,
    );
    await printRecords(config, domain, []);
    out.write(`
Next steps:
  1. Publish the records above at your DNS provider, and set the PTR of each server address.
  2. Add a sending account:   posta user add postmaster@${domain} --dir ${args.dir}
  3. Keep the folder in git:  cd ${args.dir} && git init && git add . && git commit -m "posta config"
  4. Start the server:        posta serve --dir ${args.dir}
`);
    if (!config.tls) {
      out.write(`  (posta serve needs a certificate: set [tls] cert and key in ${config.file}.)\n`);
    }
  },
};
