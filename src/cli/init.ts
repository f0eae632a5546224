import { UsageError } from '../errors.ts';
import { parseDomain } from '../address/address.ts';
import { initDomain } from '../setup/init.ts';
import { positionals, str, type Command } from './command.ts';
import { printRecords } from './dns.ts';

export function domainArg(text: string): string {
  const d = parseDomain(text);
  if (!d.ok) throw new UsageError(`${d.error}.`);
  return d.value;
}

export const init: Command = {
  name: 'init',
  help: `Usage: posta init DOMAIN [--hostname HOST] [--dir DIR]

Creates the config folder DIR (default ./posta or $POSTA_DIR) with posta.toml,
domains/DOMAIN/{users,aliases} and two DKIM keys (RSA-2048 and Ed25519), then
prints the DNS records to publish. Run it again with another DOMAIN to add that
domain; existing domains, keys and accounts are never changed.

  --hostname HOST   the server's name (EHLO, certificate, PTR); default mail.DOMAIN`,
  options: { hostname: { type: 'string' } },
  async run(args) {
    const [domainText = ''] = positionals(this, args, ['DOMAIN']);
    const domain = domainArg(domainText);
    const hostnameText = str(args, 'hostname');
    const hostname = hostnameText === undefined ? undefined : domainArg(hostnameText);
    const result = await initDomain({ dir: args.dir, domain, hostname });
    const { config } = result;
    const out = process.stdout;
    if (result.createdConfig) out.write(`Created ${config.file} (hostname ${config.hostname}).\n`);
    out.write(
      `Added ${domain} with DKIM keys ${result.keys.map((k) => k.selector).join(' and ')}.\n\n`,
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
