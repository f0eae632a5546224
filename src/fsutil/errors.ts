/**
 * Node's file-system errors (EACCES, EROFS, ENOSPC...) as one sentence that
 * names the path and says what to do, for the CLI's stderr. A permission
 * error names the owner of the path (or of the nearest folder above it that
 * exists), since the fix is usually to run posta as that user.
 */
import { nearestOwner, userName } from './owner.ts';

type FsError = NodeJS.ErrnoException & { path?: string; dest?: string };

const VERBS: Record<string, string> = {
  open: 'open',
  mkdir: 'create',
  mkdtemp: 'create a folder in',
  rename: 'replace',
  unlink: 'remove',
  rmdir: 'remove',
  chmod: 'change the mode of',
  fchmod: 'change the mode of',
  chown: 'change the owner of',
  fchown: 'change the owner of',
  scandir: 'list',
  stat: 'look at',
  lstat: 'look at',
  access: 'use',
  copyfile: 'copy',
  write: 'write',
  read: 'read',
};

/** Is `err` a Node fs error posta can explain in a sentence? */
export function isFsError(err: unknown): err is FsError {
  const e = err as FsError;
  return e instanceof Error && typeof e.code === 'string' && typeof e.syscall === 'string';
}

/** The user that owns `path`, or the folder above it that exists: a name, or "uid N". */
export function ownerOf(path: string): string {
  return userName(nearestOwner(path).uid);
}

/**
 * One sentence for a Node fs error, or undefined when it is not one; `what`
 * names the path ("the config folder").
 */
export function fsErrorSentence(err: unknown, what?: string): string | undefined {
  if (!isFsError(err)) return undefined;
  const path = err.path ?? 'a file';
  const verb = VERBS[err.syscall ?? ''] ?? err.syscall;
  const cannot = `Cannot ${verb} ${what ? `${what} ` : ''}${path}`;
  switch (err.code) {
    case 'EACCES':
    case 'EPERM': {
      const { of, uid } = nearestOwner(path);
      const owner = userName(uid);
      const as = owner === 'root' ? 'root' : `${owner} (\`sudo -u ${owner} posta ...\`) or as root`;
      return `${cannot}: permission denied (${of === path ? 'it' : of} belongs to ${owner}); run the command as ${as}, or choose another --dir.`;
    }
    case 'EROFS':
      return `${cannot}: the file system is read-only; choose a --dir on a writable disk.`;
    case 'ENOENT':
      return `${cannot}: it (or a folder above it) does not exist, or allows no new files there; check the path or choose another --dir.`;
    case 'ENOTDIR':
      return `${cannot}: part of that path is a file, not a folder; check the path.`;
    case 'EISDIR':
      return `${cannot}: it is a folder, not a file; check the path.`;
    case 'EEXIST':
      return `${cannot}: something else already has that name; move it away or choose another path.`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `${cannot}: no space left on its disk; free some space and try again.`;
    case 'EMFILE':
    case 'ENFILE':
      return `${cannot}: too many open files; close some programs or raise the limit (ulimit -n).`;
    case 'ENAMETOOLONG':
    case 'ELOOP':
      return `${cannot}: the path is too long or loops through symbolic links; choose a shorter path.`;
    case 'EIO':
      return `${cannot}: the disk reported an input/output error; check the disk (dmesg).`;
    default:
      return undefined;
  }
}
