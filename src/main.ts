/**
 * posta's entry point: parse argv, run one command from cli/, and turn its
 * outcome into an exit code: 0 success, 1 a check or operation failed, 2 wrong
 * usage. Errors are one sentence on stderr.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PostaError, UsageError } from './errors.ts';
import { commands } from './cli/commands.ts';
import { parseCommandArgs } from './cli/command.ts';
import { VERSION } from './version.ts';
import { serviceDir } from './config/paths.ts';
import { fsErrorSentence } from './fsutil/errors.ts';
import { actAsOwnerOf } from './cli/privileges.ts';
import { loadConfig } from './config/load.ts';

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `posta ${VERSION}: your own mail sending server.

Usage: posta COMMAND [ARGS] [--dir DIR]

Commands:
${lines.join('\n')}

Every command takes --dir DIR (default ./posta, or $POSTA_DIR), before or after it.
\`posta COMMAND --help\` explains one command.
`;
}

/** `--dir DIR` (or `--dir=DIR`) before the command moves just after it, where a later one wins. */
function globalDir(argv: string[]): string[] {
  const rest = [...argv];
  let dir: string | undefined;
  while (rest[0] === '--dir' || rest[0]?.startsWith('--dir=')) {
    const flag = rest.shift() ?? '';
    dir = flag === '--dir' ? rest.shift() : flag.slice('--dir='.length);
    if (!dir) throw new UsageError('--dir needs a folder: `posta --dir DIR COMMAND`.');
  }
  if (dir === undefined) return argv;
  const [name, ...after] = rest;
  return name === undefined ? [] : [name, `--dir=${dir}`, ...after];
}

/** Where the folder keeps its data (a broken or missing posta.toml: the default), for privileges.ts. */
function dataDirOf(dir: string): Promise<string> {
  return loadConfig(dir).then(
    (c) => c.dataDir,
    () => join(dir, 'data'),
  );
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = globalDir(argv);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = commands.find((c) => c.name === rest[0]);
    process.stdout.write(topic ? `${(await topic.load()).help}\n` : overview());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`posta ${VERSION}\n`);
    return 0;
  }
  const entry = commands.find((c) => c.name === name);
  if (!entry) {
    throw new UsageError(`"${name}" is not a posta command; \`posta --help\` lists them.`);
  }
  const cmd = await entry.load();
  const args = parseCommandArgs(cmd, rest);
  if (args.help) {
    process.stdout.write(`${cmd.help}\n`);
    return 0;
  }
  if (!cmd.asRoot && process.geteuid?.() === 0) actAsOwnerOf(args.dir, await dataDirOf(args.dir));
  return (await cmd.run(args)) ?? 0;
}

/**
 * The command line. Run as sendmail (/usr/sbin/sendmail -> bin/posta, which
 * passes the name in $POSTA_INVOKED_AS), every argument is a sendmail flag,
 * and unless --dir or $POSTA_DIR names one (cron and PHP pass neither) the
 * config folder is the installed service's (config/paths.ts), else ./posta.
 */
function commandLine(): string[] {
  const argv = process.argv.slice(2);
  const invokedAs = process.env.POSTA_INVOKED_AS;
  delete process.env.POSTA_INVOKED_AS;
  if (invokedAs !== 'sendmail') return argv;
  const named = process.env.POSTA_DIR || argv.some((a) => a === '--dir' || a.startsWith('--dir='));
  if (named) return ['sendmail', ...argv];
  if (existsSync(join(serviceDir(), 'posta.toml'))) process.env.POSTA_DIR = serviceDir();
  else if (!existsSync(join('posta', 'posta.toml'))) {
    throw new PostaError(
      `There is no ${join(serviceDir(), 'posta.toml')} (\`posta install-service\` links ${serviceDir()} to the config folder) nor ./posta/posta.toml; install the service, or pass --dir DIR.`,
    );
  }
  return ['sendmail', ...argv];
}

try {
  process.exitCode = await main(commandLine());
} catch (err) {
  if (err instanceof PostaError) {
    process.stderr.write(`posta: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    // A file-system error no command explained (EACCES, EROFS, ENOSPC...): one sentence too.
    const sentence = fsErrorSentence(err);
    process.stderr.write(
      sentence
        ? `posta: ${sentence}\n`
        : `posta: unexpected error: ${(err as Error).stack ?? String(err)}\n`,
    );
    process.exitCode = 1;
  }
}
