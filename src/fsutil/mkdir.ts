/**
 * Create a folder and the folders above it that are missing. Node's own
 * `mkdir({ recursive: true })` spins forever where the kernel answers ENOENT
 * for a parent that exists (/proc/x): here each level is tried at most twice
 * (before and after making its parent), and the error is thrown. Synchronous:
 * a few mkdir calls, at start-up or in a CLI command.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

export function makeDirs(path: string, mode = 0o777): void {
  if (tryMkdir(path, mode) !== 'ENOENT') return;
  if (dirname(path) === path) tryMkdir(path, mode, true);
  makeDirs(dirname(path), mode);
  tryMkdir(path, mode, true);
}

/** mkdir that is content with an existing folder; 'ENOENT' (unless `last`) for a missing parent. */
function tryMkdir(path: string, mode: number, last = false): 'ENOENT' | undefined {
  try {
    mkdirSync(path, { mode });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(path).isDirectory()) return undefined;
    if (code === 'ENOENT' && !last) return 'ENOENT';
    throw err;
  }
  return undefined;
}
