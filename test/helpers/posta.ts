/** Run the real `posta` command (bin/posta) as a user would. */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const POSTA = join(ROOT, 'bin/posta');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function posta(
  args: string[],
  opts: {
    input?: string;
    /** Added to the environment; undefined removes a variable. */
    env?: Record<string, string | undefined>;
    cwd?: string;
    /** Run as the unprivileged user nobody (the tests run as root). */
    asNobody?: boolean;
    /** The program to run instead of bin/posta (a symlink to it named sendmail, say). */
    bin?: string;
  } = {},
): Promise<Run> {
  const bin = opts.bin ?? POSTA;
  const [command, argv] = opts.asNobody
    ? ['setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', bin, ...args]]
    : [bin, args];
  const env: NodeJS.ProcessEnv = { ...process.env, POSTA_DIR: '', ...opts.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      cwd: opts.cwd ?? ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

export async function tempDir(prefix = 'posta-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** `posta init` into a fresh folder; returns the config folder. */
export async function initFolder(domain = 'example.test', hostname = `mail.${domain}`) {
  const dir = join(await tempDir(), 'posta');
  const r = await posta(['init', domain, '--hostname', hostname, '--dir', dir]);
  if (r.code !== 0) throw new Error(`posta init failed: ${r.stderr}`);
  return { dir, init: r };
}

/**
 * As on a real machine, let other users (PHP as www-data, say) read the
 * config folder `dir` and run bin/posta; its keys and data/ stay the server's.
 */
export async function shareConfig(dir: string): Promise<void> {
  await openToOthers(ROOT);
  const domains = (await readdir(join(dir, 'domains'))).map((d) => join(dir, 'domains', d));
  for (const d of [dirname(dir), dir, join(dir, 'domains'), ...domains]) await chmod(d, 0o755);
  await chmod(join(dir, 'posta.toml'), 0o644);
}

/** Let other users reach `dir` (search permission on it and every folder above it). */
async function openToOthers(dir: string): Promise<void> {
  for (let d = dir; ; d = dirname(d)) {
    const { mode } = await stat(d);
    if ((mode & 0o001) === 0) await chmod(d, mode | 0o001);
    if (dirname(d) === d) return;
  }
}
