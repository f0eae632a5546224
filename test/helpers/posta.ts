/** Run the real `posta` command (bin/posta) as a user would. */
import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
    env?: Record<string, string>;
    cwd?: string;
    /** Run as the unprivileged user nobody (the tests run as root). */
    asNobody?: boolean;
  } = {},
): Promise<Run> {
  const [command, argv] = opts.asNobody
    ? ['setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', POSTA, ...args]]
    : [POSTA, args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, POSTA_DIR: '', ...opts.env },
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
