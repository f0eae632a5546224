import { PostaError, UsageError } from '../errors.ts';
import { parseDomain } from '../address/address.ts';
import { listDomains } from '../config/load.ts';
import { aliasesFile, requireConfigFolder, requireDomain } from '../config/paths.ts';
import {
  checkAlias,
  editAliases,
  parseAliasLocal,
  parseTarget,
  readAliases,
} from '../aliases/aliases.ts';
import { positionals, type Command } from './command.ts';
import { domainArg } from './init.ts';

function aliasAddress(text: string): { local: string; domain: string } {
  const at = text.lastIndexOf('@');
  if (at < 0) {
    throw new UsageError(`"${text}" is not an alias address; write local@domain or *@domain.`);
  }
  const d = parseDomain(text.slice(at + 1));
  if (!d.ok) throw new UsageError(`${d.error}.`);
  return { local: parseAliasLocal(text.slice(0, at)), domain: d.value };
}

export const alias: Command = {
  name: 'alias',
  help: `Usage: posta alias add ALIAS TARGET...
       posta alias del ALIAS [TARGET...]
       posta alias list [DOMAIN]

ALIAS is local@domain, or *@domain for the catch-all. Mail to it is forwarded to
every TARGET (an address; a bare local part means the alias's domain). The file
domains/DOMAIN/aliases stays editable by hand; comments are kept.`,
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const cmd = { ...this, name: `alias ${verb}` };
    const sub = { ...args, positionals: rest };
    switch (verb) {
      case 'add': {
        const [name = '', ...targetTexts] = positionals(cmd, sub, ['ALIAS', 'TARGET'], true);
        const a = aliasAddress(name);
        await requireDomain(args.dir, a.domain);
        const targets = targetTexts.map((t) => parseTarget(a.domain, t));
        checkAlias({ local: a.local, targets }, a.domain);
        await editAliases(aliasesFile(args.dir, a.domain), a.domain, (f) =>
          f.add(a.local, targets),
        );
        process.stdout.write(`${name}: ${targets.join(', ')}\n`);
        return;
      }
      case 'del': {
        const [name = '', ...targetTexts] = positionals(cmd, sub, ['ALIAS'], true);
        const a = aliasAddress(name);
        await requireDomain(args.dir, a.domain);
        const targets = targetTexts.map((t) => parseTarget(a.domain, t));
        const changed = await editAliases(aliasesFile(args.dir, a.domain), a.domain, (f) =>
          f.remove(a.local, targets),
        );
        if (!changed)
          throw new PostaError(
            `There is no alias ${name}${targets.length ? ` with those targets` : ''}; \`posta alias list\` shows them.`,
          );
        process.stdout.write(
          `Removed ${targets.length ? `${targets.join(', ')} from ` : ''}${name}.\n`,
        );
        return;
      }
      case 'list': {
        if (rest.length > 1) throw new UsageError('posta alias list takes at most one DOMAIN.');
        const only = rest[0] ? domainArg(rest[0]) : undefined;
        if (only) await requireDomain(args.dir, only);
        else await requireConfigFolder(args.dir);
        const domains = only ? [only] : await listDomains(args.dir);
        for (const d of domains) {
          await requireDomain(args.dir, d);
          for (const a of (await readAliases(aliasesFile(args.dir, d), d)).aliases()) {
            process.stdout.write(`${a.local}@${d}: ${a.targets.join(', ')}\n`);
          }
        }
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not an alias command` : 'An alias command is missing'}; use add, del or list.`,
        );
    }
  },
};
