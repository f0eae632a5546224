/**
 * `posta suppress`: the suppression list of each sending domain
 * (suppression/suppression.ts), beside a running server: an address added
 * here gets no more mail from the domain from its next delivery attempt on.
 */
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig, listDomains } from '../config/load.ts';
import { requireDomain } from '../config/paths.ts';
import { openSuppressions } from '../store/open.ts';
import { parseAddress } from '../address/address.ts';
import type { SuppressionReason } from '../suppression/suppression.ts';
import { positionals, str, type Command } from './command.ts';
import { domainArg } from './init.ts';

function addressArg(text: string): string {
  const a = parseAddress(text);
  if (!a.ok) throw new UsageError(`${a.error}.`);
  return `${a.value.local}@${a.value.domain}`;
}

function reasonArg(text: string | undefined): SuppressionReason | undefined {
  if (text === undefined) return undefined;
  const r = text.toUpperCase();
  if (r !== 'BOUNCE' && r !== 'COMPLAINT' && r !== 'UNSUBSCRIBE') {
    throw new UsageError(`--reason must be BOUNCE, COMPLAINT or UNSUBSCRIBE, not "${text}".`);
  }
  return r;
}

export const suppress: Command = {
  name: 'suppress',
  help: `Usage: posta suppress add ADDRESS --domain DOMAIN [--reason BOUNCE|COMPLAINT|UNSUBSCRIBE]
       posta suppress del ADDRESS --domain DOMAIN
       posta suppress list [--domain DOMAIN] [--reason R] [--json]

Mail from DOMAIN to a suppressed ADDRESS is accepted but never sent: the
recipient fails at once (a DSN to the sender, a Bounce event of subtype
OnAccountSuppressionList). A hard bounce (an address that does not exist)
adds the address by itself, with reason BOUNCE.`,
  options: {
    domain: { type: 'string' },
    reason: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const cmd = { ...this, name: `suppress ${verb}` };
    const sub = { ...args, positionals: rest };
    const config = await loadConfig(args.dir);
    const domainText = str(args, 'domain');
    const domain = domainText === undefined ? undefined : domainArg(domainText);
    if (domain !== undefined) await requireDomain(args.dir, domain);
    const needDomain = () => {
      if (domain === undefined) {
        throw new UsageError(`--domain is missing; see \`posta ${cmd.name} --help\`.`);
      }
      return domain;
    };
    switch (verb) {
      case 'add': {
        const [text = ''] = positionals(cmd, sub, ['ADDRESS']);
        const address = addressArg(text);
        const d = needDomain();
        const lists = await openSuppressions(config.storage, config.dataDir, true);
        try {
          await lists.list.add({
            domain: d,
            address,
            reason: reasonArg(str(args, 'reason')) ?? 'BOUNCE',
          });
        } finally {
          await lists.close();
        }
        process.stdout.write(`${address} is suppressed for ${d}.\n`);
        return;
      }
      case 'del': {
        const [text = ''] = positionals(cmd, sub, ['ADDRESS']);
        const address = addressArg(text);
        const d = needDomain();
        const lists = await openSuppressions(config.storage, config.dataDir, true);
        try {
          if (!(await lists.list.remove(d, address))) {
            throw new PostaError(`${address} is not on the suppression list of ${d}.`);
          }
        } finally {
          await lists.close();
        }
        process.stdout.write(`${address} may get mail from ${d} again.\n`);
        return;
      }
      case 'list': {
        positionals(cmd, sub, []);
        const domains = domain ? [domain] : await listDomains(args.dir);
        const reason = reasonArg(str(args, 'reason'));
        const lists = await openSuppressions(config.storage, config.dataDir, false);
        try {
          const list = await lists.list.list({ domains, ...(reason ? { reason } : {}) });
          const rows = list.map((s) => ({
            domain: s.domain,
            address: s.address,
            reason: s.reason,
            message: s.message,
            created_at: new Date(s.createdAt).toISOString(),
          }));
          if (args.values.json === true) {
            process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
          } else if (rows.length === 0) {
            process.stdout.write('The suppression list is empty.\n');
          } else {
            for (const r of rows) {
              process.stdout.write(
                `${r.address}  ${r.domain}  ${r.reason}  ${r.created_at}${r.message ? `  (${r.message})` : ''}\n`,
              );
            }
          }
        } finally {
          await lists.close();
        }
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not a suppress command` : 'A suppress command is missing'}; use add, del or list.`,
        );
    }
  },
};
