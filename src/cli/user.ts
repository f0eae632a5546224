import { UsageError } from '../errors.ts';
import { addUser, changePassword, deleteUser, listUsers } from '../users/accounts.ts';
import { positionals, str, type Command } from './command.ts';
import { readPassword } from './password.ts';
import { domainArg } from './init.ts';

export const user: Command = {
  name: 'user',
  help: `Usage: posta user add ADDRESS [--password P] [--send-as-domain]
       posta user passwd ADDRESS [--password P]
       posta user del ADDRESS
       posta user list [DOMAIN]

Accounts live in domains/DOMAIN/users as argon2id hashes (older scrypt ones are
upgraded at the account's next login, or by passwd). Without --password the
password is asked for on the terminal (no echo), or read from the first line of
standard input. --send-as-domain lets the account send as any address of its
domain; otherwise it may send only as itself.`,
  options: { password: { type: 'string' }, 'send-as-domain': { type: 'boolean' } },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const sub = { ...args, positionals: rest };
    const cmd = { ...this, name: `user ${verb}` };
    switch (verb) {
      case 'add': {
        const [address = ''] = positionals(cmd, sub, ['ADDRESS']);
        const password = await readPassword(str(args, 'password'), { confirm: true });
        await addUser(args.dir, address, password, {
          sendAsDomain: args.values['send-as-domain'] === true,
        });
        process.stdout.write(`Added ${address}.\n`);
        return;
      }
      case 'passwd': {
        const [address = ''] = positionals(cmd, sub, ['ADDRESS']);
        const password = await readPassword(str(args, 'password'), { confirm: true });
        await changePassword(args.dir, address, password);
        process.stdout.write(`Changed the password of ${address}.\n`);
        return;
      }
      case 'del': {
        const [address = ''] = positionals(cmd, sub, ['ADDRESS']);
        await deleteUser(args.dir, address);
        process.stdout.write(`Deleted ${address}.\n`);
        return;
      }
      case 'list': {
        const [domain] = positionals(cmd, sub, [], true);
        if (rest.length > 1) throw new UsageError('posta user list takes at most one DOMAIN.');
        for (const u of await listUsers(args.dir, domain ? domainArg(domain) : undefined)) {
          process.stdout.write(`${u.address}${u.account.sendAsDomain ? '\tsend-as=domain' : ''}\n`);
        }
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not a user command` : 'A user command is missing'}; use add, del, list or passwd.`,
        );
    }
  },
};
