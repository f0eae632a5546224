/**
 * Crash-safe file replacement: write a temporary file beside the target, fsync
 * it, rename it over the target, fsync the directory. A reader sees the old
 * file or the new one, never half of either; after a crash the rename either
 * happened or did not.
 *
 * The replacement keeps the owner, group and mode of the file it replaces, so
 * root editing a folder that belongs to the service user (after
 * `posta install-service`) does not lock that user out. A new file takes the
 * owner and group of its folder when root writes it, and `mode`; a replaced
 * file keeps its mode, but never more open than `mode`.
 */
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PostaError } from '../errors.ts';
import { ownerOf } from './errors.ts';

export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const existing = await stat(path).catch(() => null);
  const fh = await open(tmp, 'wx', mode);
  try {
    await keepOwnership(fh, path, existing, mode);
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Give the temporary file the owner and mode the target has (or its folder's owner). */
async function keepOwnership(
  fh: FileHandle,
  path: string,
  existing: Stats | null,
  mode: number,
): Promise<void> {
  const mine = await fh.stat();
  const want = existing ?? (process.geteuid?.() === 0 ? await stat(dirname(path)) : mine);
  if (want.uid !== mine.uid || want.gid !== mine.gid) {
    try {
      await fh.chown(want.uid, want.gid);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
      const owner = ownerOf(path);
      throw new PostaError(
        `${path} belongs to ${owner}, and a copy written by this user would lock ${owner} out; run the command as ${owner} (e.g. \`sudo -u ${owner} posta ...\`) or as root.`,
      );
    }
  }
  // The mode last: chown clears the set-id bits.
  // Never looser than the caller asks: a key meant to be 0600 stays so.
  if (existing) await fh.chmod(existing.mode & mode & 0o7777);
}

/** Make a directory entry (create, rename, unlink) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
