import { loadConfig } from '../config/load.ts';
import { authenticate as check } from '../users/accounts.ts';
import { positionals, str, type Command } from './command.ts';
import { readPassword } from './password.ts';

export const authenticate: Command = {
  name: 'authenticate',
  help: `Usage: posta authenticate ADDRESS [--password P]

Exits 0 when P is the password of ADDRESS and 1 when it is not or the account
does not exist. Without --password, the password is asked for or read from stdin.`,
  options: { password: { type: 'string' } },
  async run(args) {
    const [address = ''] = positionals(this, args, ['ADDRESS']);
    await loadConfig(args.dir); // a clear error when the folder is wrong
    const password = await readPassword(str(args, 'password'), { confirm: false });
    if (await check(args.dir, address, password)) return 0;
    process.stderr.write(`Authentication failed for ${address}.\n`);
    return 1;
  },
};
