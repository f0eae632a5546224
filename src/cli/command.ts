/**
 * The shape of a CLI command, and argument parsing shared by all of them
 * (node:util parseArgs, strict: an unknown flag is a usage error, exit 2).
 */
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { UsageError } from '../errors.ts';
import { configDir } from '../config/load.ts';

export interface Command {
  name: string;
  /** The usage line(s) and a paragraph of help, for `posta CMD --help`. */
  help: string;
  options?: ParseArgsOptionsConfig;
  /**
   * Run as whoever started it, root included. Every other command run by root
   * in a folder of another user's runs as that user (privileges.ts).
   */
  asRoot?: boolean;
  /** Returns the exit code (0 when undefined). */
  run(args: Args): Promise<number | void>;
}

export interface Args {
  dir: string;
  positionals: string[];
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
}

const COMMON: ParseArgsOptionsConfig = {
  dir: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

export function parseCommandArgs(cmd: Command, argv: string[]): Args & { help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...COMMON, ...cmd.options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    // Node's text for an unknown option runs on about '--' (and drops a quote): say it shortly.
    const unknown = /^Unknown option '([^']+)'/.exec((err as Error).message)?.[1];
    const what = unknown ? `Unknown option ${unknown}` : (err as Error).message.replace(/\.$/, '');
    throw new UsageError(`${what}; see \`posta ${cmd.name} --help\`.`);
  }
  const { dir, help, ...values } = parsed.values;
  if (dir === '') throw new UsageError(`--dir needs a folder; see \`posta ${cmd.name} --help\`.`);
  return {
    dir: configDir(dir as string | undefined),
    positionals: parsed.positionals,
    values,
    help: help === true,
  };
}

export function str(args: Args, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** Exactly `n` positionals or a usage error naming what is expected. */
export function positionals(cmd: Command, args: Args, names: string[], rest = false): string[] {
  const p = args.positionals;
  if (p.length < names.length || (!rest && p.length > names.length)) {
    const missing = names.slice(p.length);
    const what = missing.length
      ? `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} missing`
      : `unexpected argument "${p[names.length]}"`;
    throw new UsageError(`${what}; see \`posta ${cmd.name} --help\`.`);
  }
  return p;
}
