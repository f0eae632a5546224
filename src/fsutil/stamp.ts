/**
 * What changes when a file is rewritten or replaced: its modification time,
 * size and inode. Watchers (the config folder, [tls] files) compare stamps
 * taken before each read, so a change made during a read is seen next time.
 */
import { stat } from 'node:fs/promises';

export async function fileStamp(path: string): Promise<string> {
  const s = await stat(path);
  return `${s.mtimeMs}:${s.size}:${s.ino}`;
}
