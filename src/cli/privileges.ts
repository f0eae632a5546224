/**
 * Root at work in a config folder that belongs to another user (the service
 * user, after `posta install-service`) works as that user: every file it
 * writes or creates (accounts, aliases, a new domain's keys, the queue's
 * SQLite journal) is then that user's, as if the user had run the command,
 * and root never follows a path the folder's owner could have swapped for a
 * symlink to /etc.
 *
 * The switch happens only when the config folder and the data folder (or,
 * before it exists, the folder it will be made in) have the same owner, and
 * that owner is not root. Any other layout stays as root set it up: a folder
 * of alice's whose server root runs (a root-owned data folder), or a
 * root-owned /etc/posta with a data folder of the service user's.
 *
 * Commands that need root, or must record who ran them, say so
 * (Command.asRoot) and are left alone.
 */
import { nearestOwner, passwdEntry } from '../fsutil/owner.ts';

/** Become the common owner of `folders` when running as root and it is not root. */
export function actAsOwnerOf(...folders: string[]): void {
  if (process.geteuid?.() !== 0 || !process.setuid || !process.setgid) return;
  const owners = new Set(folders.map((f) => nearestOwner(f).uid));
  const [uid] = owners;
  if (owners.size !== 1 || uid === undefined || uid === 0) return;
  const user = passwdEntry(uid);
  // The user's own groups, as systemd's User= gives them (ssl-cert, say).
  if (user && process.initgroups) process.initgroups(user.name, user.gid);
  else process.setgroups?.([]);
  process.setgid(user?.gid ?? nearestOwner(folders[0] ?? '/').gid);
  process.setuid(uid); // for good: real, effective and saved ids
}
