/**
 * `posta admin`: the way into the dashboard (web/dashboard/). `password`
 * sets the admin password (its argon2id hash in the config folder's
 * admin-password file, mode 0600); `link` prints a one-time login link that
 * works for LINK_TTL_MS in the running server, for a first login or a lost
 * password.
 */
import { UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { adminPasswordFile } from '../config/paths.ts';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { hashPassword } from '../users/hash.ts';
import { LINK_TTL_MS } from '../web/dashboard/sessions.ts';
import { dashboardUrl, loginLink } from '../web/dashboard/admin.ts';
import { readPassword } from './password.ts';
import { str, type Command } from './command.ts';

export const admin: Command = {
  name: 'admin',
  help: `Usage: posta admin password [--password P]
       posta admin link

The dashboard is on the [listen] http listener (http://127.0.0.1:8025/ by
default) and needs a login, even on loopback. \`password\` sets the admin
password (prompted for when not given, or read from standard input).
\`link\` prints a login link that works once, for ${LINK_TTL_MS / 60_000} minutes, in the running
server. From a laptop, reach a server's loopback listener with
\`ssh -L 8025:127.0.0.1:8025 SERVER\` and open http://127.0.0.1:8025/; or set
[dashboard] https = true and open the link's path at https://HOSTNAME/.`,
  options: { password: { type: 'string' } },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    if (rest.length)
      throw new UsageError(`Unexpected argument "${rest[0]}"; see \`posta admin --help\`.`);
    const config = await loadConfig(args.dir);
    switch (verb) {
      case 'password': {
        const pw = await readPassword(str(args, 'password'), {
          confirm: true,
          prompt: 'Admin password: ',
        });
        const file = adminPasswordFile(args.dir);
        await writeFileAtomic(file, `${await hashPassword(pw)}\n`, 0o600);
        process.stdout.write(
          `The admin password is set (${file}); log in at ${dashboardUrl(config)}.\n`,
        );
        return;
      }
      case 'link': {
        if (str(args, 'password') !== undefined) {
          throw new UsageError(
            '--password goes with `posta admin password`; see `posta admin --help`.',
          );
        }
        process.stdout.write(`${loginLink(config)}\n`);
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `Unknown verb "${verb}"` : 'A verb is missing'}; use \`posta admin password\` or \`posta admin link\`.`,
        );
    }
  },
};
