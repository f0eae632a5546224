import { execFile } from 'node:child_process';
import { lstat, readFile, realpath, symlink, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PostaError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { serviceDir } from '../config/paths.ts';
import { makeDirs } from '../fsutil/mkdir.ts';
import { positionals, str, type Command } from './command.ts';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');

export const installService: Command = {
  name: 'install-service',
  asRoot: true,
  help: `Usage: posta install-service [--user NAME] [--unit-dir DIR] [--print] [--dir DIR]

Installs posta as a systemd service that runs \`posta serve --dir DIR\` as the
unprivileged user NAME (default "posta", created as a system user when
missing), with CAP_NET_BIND_SERVICE for the low ports and systemd's sandboxing
(read-only system and config folder, writable data folder). It gives the
config folder to that user, writes UNIT-DIR/posta.service (default
/etc/systemd/system) from contrib/posta.service, and reloads systemd. Start it
with \`systemctl enable --now posta\`. --print only prints the unit.

It also links /etc/posta to the config folder (unless /etc/posta is some
other file or folder), where posta run as /usr/sbin/sendmail finds it
without --dir, and prints the \`ln -s\` line that makes posta the machine's
sendmail; it never replaces an existing /usr/sbin/sendmail itself.`,
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
    // The folders above the config folder and the code must let the user through:
    // a clone or a config folder under /root (0700) cannot be read by it.
    await mustReach(user, group, '-x', dirname(config.dir), 'the config folder');
    await mustReach(user, group, '-r', join(ROOT, 'src/main.ts'), 'the code');
    makeDirs(config.dataDir, 0o700);
    await run('chown', ['-R', `${user}:${group}`, config.dir, config.dataDir]);
    const unitDir = str(args, 'unit-dir') ?? '/etc/systemd/system';
    const file = join(unitDir, 'posta.service');
    await writeFile(file, unit, { mode: 0o644 });
    await run('systemctl', ['daemon-reload']).catch(() => {});
    process.stdout.write(
      `Wrote ${file} (user ${user}, config ${config.dir}).\n${await linkServiceDir(config.dir)}\n${await sendmailAdvice()}\nStart it with: systemctl enable --now posta\nLogs: journalctl -u posta -f\n`,
    );
  },
};

/**
 * Refuse when `user` cannot reach `path` through every folder above it:
 * `test -x` a folder it must pass through, `test -r` a file it must read.
 */
async function mustReach(
  user: string,
  group: string,
  test: '-x' | '-r',
  path: string,
  what: string,
): Promise<void> {
  const asUser = ['--reuid', user, '--regid', group, '--clear-groups', '--', 'test', test, path];
  const ok = await run('setpriv', asUser).then(
    () => true,
    () => false,
  );
  if (ok) return;
  throw new PostaError(
    `The service user ${user} cannot read ${path} (${what}): a folder above it is private (e.g. /root); move it (code in /opt/posta, config in /etc/posta or /srv/posta) or let ${user} through with chmod o+x on each folder above it.`,
  );
}

/**
 * Point the service link (/etc/posta) at `dir`, replacing an older link but
 * never a real file or folder; returns the sentence that says what happened.
 */
async function linkServiceDir(dir: string): Promise<string> {
  const link = serviceDir();
  const st = await lstat(link).catch(() => null);
  const same = st && (await realpath(link).catch(() => '')) === (await realpath(dir));
  if (same) return `${link} is the config folder, where posta run as sendmail looks.`;
  if (st && !st.isSymbolicLink()) {
    return `${link} exists and is not a link, so posta run as sendmail will not find ${dir} by itself: move ${link} away and run \`ln -s ${dir} ${link}\`, or give sendmail --dir ${dir}.`;
  }
  try {
    if (st) await unlink(link); // a link an earlier install-service made
    await symlink(dir, link);
  } catch (err) {
    return `Cannot link ${link} to ${dir} (${(err as Error).message}); run \`ln -sfn ${dir} ${link}\` so that posta run as sendmail finds it.`;
  }
  return `Linked ${link} -> ${dir}, where posta run as sendmail looks.`;
}

/** How to make bin/posta the machine's sendmail, or that it is already. */
async function sendmailAdvice(): Promise<string> {
  const posta = join(ROOT, 'bin/posta');
  const lines: string[] = [];
  for (const path of ['/usr/sbin/sendmail', '/usr/lib/sendmail']) {
    const target = await realpath(path).catch(() => null);
    if (target === (await realpath(posta))) continue;
    lines.push(
      target === null
        ? `ln -s ${posta} ${path}`
        : `ln -sf ${posta} ${path}   # replaces ${target}, another mail server's`,
    );
  }
  if (!lines.length) return "posta is this machine's sendmail.";
  return `To make posta this machine's sendmail (cron, PHP's mail()), run:\n  ${lines.join('\n  ')}`;
}

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
