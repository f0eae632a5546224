/**
 * Who submitted a message over the sendmail socket: the local user, proved by
 * the kernel rather than claimed, by the owner of a file the client makes in
 * a maildrop folder (the idea of Postfix's maildrop, without its setgid
 * postdrop: here the folder is writable by all, as the socket is).
 *
 * Node cannot read a Unix socket's peer credentials (SO_PEERCRED) without a
 * native addon, and the /proc route (the peer's socket inode, then every
 * /proc/PID/fd) needs root: the server runs as its own user and may not look
 * into other users' processes. So the client proves its uid with a file:
 *
 * - DATA/maildrop is owned by the server's user, mode 1733: anyone may create
 *   a file in it, nobody else may list it, and the sticky bit lets only a
 *   file's owner (and the folder's) remove or rename it.
 * - The client creates an empty file there with a random 128-bit name (the
 *   token), mode 0600, and sends the name with its request. The kernel makes
 *   the client's uid the file's owner; no user can create a file owned by
 *   another.
 * - The server looks at the name without following a symlink (lstat), takes
 *   its owner if it is an empty regular file with one link (a hard link to
 *   another user's file has two; fs.protected_hardlinks forbids it anyway),
 *   and removes it. Names cannot be guessed, so a client cannot point at a
 *   token of someone else's in flight.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, unlink, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export const MAILDROP = 'maildrop';
const TOKEN = /^[0-9a-f]{32}$/;

/** The local user a message came from: `uid=33 (www-data)` in the log. */
export interface LocalUser {
  uid: number;
  /** The name in the user database, when it has one. */
  name: string | undefined;
}

export function describeUser(u: LocalUser): string {
  return u.name === undefined ? `uid=${u.uid}` : `uid=${u.uid} (${u.name})`;
}

/** The user this process runs as (the CLI queueing by itself). */
export function thisUser(): LocalUser {
  const uid = process.getuid?.() ?? -1;
  try {
    return { uid, name: userInfo().username };
  } catch {
    return { uid, name: undefined }; // a uid with no passwd entry (a container, say)
  }
}

/**
 * Server side: make DATA/maildrop, writable by all, listable by none, and
 * remove the tokens of clients that died before they used them.
 */
export async function makeMaildrop(dataDir: string): Promise<void> {
  const dir = join(dataDir, MAILDROP);
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o1733); // mkdir's mode goes through the umask
  const stale = Date.now() - 60 * 60_000;
  for (const name of await readdir(dir)) {
    const st = await lstat(join(dir, name)).catch(() => null);
    if (st && st.mtimeMs < stale) await unlink(join(dir, name)).catch(() => {});
  }
}

/** Client side: create a token in DATA/maildrop; undefined when that cannot be done. */
export async function createToken(dataDir: string): Promise<string | undefined> {
  const token = randomBytes(16).toString('hex');
  try {
    await writeFile(join(dataDir, MAILDROP, token), '', { flag: 'wx', mode: 0o600 });
    return token;
  } catch {
    return undefined; // no maildrop (an older server): the server says what it needs
  }
}

/** Client side: remove a token the server did not take (it refused early). */
export async function removeToken(dataDir: string, token: string | undefined): Promise<void> {
  if (token !== undefined) await unlink(join(dataDir, MAILDROP, token)).catch(() => {});
}

/**
 * Server side: the user who created the token, which is used up; undefined
 * when `token` names no token a user made.
 */
export async function takeToken(dataDir: string, token: unknown): Promise<LocalUser | undefined> {
  if (typeof token !== 'string' || !TOKEN.test(token)) return undefined;
  const path = join(dataDir, MAILDROP, token);
  // lstat, not open: the server's user may not read another user's 0600
  // file (and need not), and lstat neither follows a symlink nor opens a FIFO.
  const st = await lstat(path).catch(() => null);
  // Empty as createToken makes it: not some file of another user's moved in here.
  if (!st || !st.isFile() || st.nlink !== 1 || st.size !== 0) return undefined;
  const uid = st.uid;
  await unlink(path).catch(() => {});
  return { uid, name: await userName(uid) };
}

const run = promisify(execFile);

/**
 * The name of `uid` in the user database (NSS), when it has one; asynchronous,
 * as the server asks it (fsutil/owner.ts has the CLI's synchronous twin).
 */
async function userName(uid: number): Promise<string | undefined> {
  try {
    const { stdout } = await run('getent', ['passwd', String(uid)], { timeout: 5000 });
    return stdout.split(':')[0] || undefined;
  } catch {
    return undefined;
  }
}
