import { isIP } from 'node:net';
import { UsageError } from '../errors.ts';
import { loadConfig, type ResolvedConfig } from '../config/load.ts';
import { dkimDir, requireDomain } from '../config/paths.ts';
import { loadKeys } from '../dkim/keys.ts';
import { formatZone } from '../dnsrecords/records.ts';
import { positionals, type Command } from './command.ts';
import { domainArg } from './init.ts';

export async function printRecords(
  config: ResolvedConfig,
  domain: string,
  extra: string[],
): Promise<void> {
  await requireDomain(config.dir, domain);
  const keys = await loadKeys(dkimDir(config.dir, domain));
  const addresses = [...new Set([...config.addresses, ...extra])];
  process.stdout.write(
    formatZone({ domain, hostname: config.hostname, addresses, keys, mtaSts: config.mtaSts }),
  );
}

export const dns: Command = {
  name: 'dns',
  help: `Usage: posta dns DOMAIN [--address IP]... [--dir DIR]

Prints MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT records for DOMAIN as zone-file
lines, A/AAAA for the hostname and, as comments, the PTR each address needs.
The server's addresses come from \`addresses\` in posta.toml and from --address.`,
  options: { address: { type: 'string', multiple: true } },
  async run(args) {
    const [domainText = ''] = positionals(this, args, ['DOMAIN']);
    const extra = (args.values.address as string[] | undefined) ?? [];
    for (const a of extra) {
      if (isIP(a) === 0) throw new UsageError(`--address ${a} is not an IPv4 or IPv6 address.`);
    }
    await printRecords(await loadConfig(args.dir), domainArg(domainText), extra);
  },
};
