import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PostaError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { makeDirs } from '../fsutil/mkdir.ts';
import { positionals, str, type Command } from './command.ts';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');

export const installService: Command = {
  name: 'install-service',
  help: `Usage: posta install-service [--user NAME] [--unit-dir DIR] [--print] [--dir DIR]

Installs posta as a systemd service that runs \`posta serve --dir DIR\` as the
unprivileged user NAME (default "posta", created as a system user when
missing), with CAP_NET_BIND_SERVICE for the low ports and systemd's sandboxing
(read-only system and config folder, writable data folder). It gives the
config folder to that user, writes UNIT-DIR/posta.service (default
/etc/systemd/system) from contrib/posta.service, and reloads systemd. Start it
with \`systemctl enable --now posta\`. --print only prints the unit.`,
  options: {
    user: { type: 'string' },
    'unit-dir': { type: 'string' },
    print: { type: 'boolean' },
  },
  async run(args) {
    positionals(this, args, []);
    const config = await loadConfig(args.dir);
    const user = str(args, 'user') ?? 'posta';
    if (user === 'root') {
      throw new PostaError('posta should not run as root; pick another --user (default "posta").');
    }
    const group = args.values.print === true ? user : await ensureUser(user);
    const unit = (await readFile(join(ROOT, 'contrib/posta.service'), 'utf8'))
      .replaceAll('@ROOT@', ROOT)
      .replaceAll('@USER@', user)
      .replaceAll('@GROUP@', group)
      .replaceAll('@DIR@', config.dir)
      .replaceAll('@DATA@', config.dataDir);
    if (args.values.print === true) {
      process.stdout.write(unit);
      return;
    }
    makeDirs(config.dataDir, 0o700);
    await run('chown', ['-R', `${user}:${group}`, config.dir, config.dataDir]);
    const unitDir = str(args, 'unit-dir') ?? '/etc/systemd/system';
    const file = join(unitDir, 'posta.service');
    await writeFile(file, unit, { mode: 0o644 });
    await run('systemctl', ['daemon-reload']).catch(() => {});
    process.stdout.write(
      `Wrote ${file} (user ${user}, config ${config.dir}).\nStart it with: systemctl enable --now posta\nLogs: journalctl -u posta -f\n`,
    );
  },
};

/** The user's primary group, creating the user as a system user when missing. */
async function ensureUser(user: string): Promise<string> {
  try {
    await run('id', ['-u', user]);
  } catch {
    try {
      await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    } catch (err) {
      throw new PostaError(
        `Cannot create the user ${user} (${(err as Error).message.split('\n')[0]}); run as root or create it first.`,
      );
    }
  }
  return (await run('id', ['-gn', user])).stdout.trim();
}
