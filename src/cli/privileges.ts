/**
 * Root at work in a config folder that belongs to another user (the service
 * user, after `posta install-service`) works as that user: every file it
 * writes or creates (accounts, aliases, a new domain's keys, the queue's
 * SQLite journal) is then that user's, as if the user had run the command,
 * and root never follows a path the folder's owner could have swapped for a
 * symlink to /etc. Commands that need root, or must record who ran them,
 * say so (Command.asRoot) and are left alone.
 */
import { statSync } from 'node:fs';

/** Become the owner of `path` when running as root and `path` belongs to someone else. */
export function actAsOwnerOf(path: string): void {
  if (process.geteuid?.() !== 0 || !process.setuid || !process.setgid) return;
  let owner;
  try {
    owner = statSync(path);
  } catch {
    return; // not made yet (init): root makes it, and it is root's
  }
  if (owner.uid === 0) return;
  process.setgroups?.([]);
  process.setgid(owner.gid);
  process.setuid(owner.uid); // for good: real, effective and saved ids
}
