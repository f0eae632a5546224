/**
 * A server secret in a file of its own (SRS's, the unsubscribe links'): 32
 * random bytes, base64 on one line, mode 0600, made atomically on first use
 * and read back after; a file too short to be one is replaced.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic.ts';

export async function loadSecret(file: string): Promise<Buffer> {
  try {
    const secret = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (secret.length >= 16) return secret;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(32);
  await writeFileAtomic(file, `${secret.toString('base64')}\n`, 0o600);
  return secret;
}
