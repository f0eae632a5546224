/**
 * Who owns a path, for sentences that say which user to run posta as and for
 * root acting as a folder's owner (cli/privileges.ts): the nearest of the
 * path and the folders above it that exists, and that owner's entry in the
 * user database (getent, so NSS users such as LDAP's count too).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';

/** The owner of `path`, or of the nearest folder above it that exists (`of`). */
export function nearestOwner(path: string): { of: string; uid: number; gid: number } {
  for (let p = path; ; p = dirname(p)) {
    try {
      const st = statSync(p);
      return { of: p, uid: st.uid, gid: st.gid };
    } catch {
      if (dirname(p) === p) return { of: p, uid: 0, gid: 0 };
    }
  }
}

/** The user database's name and primary group of `uid`; undefined when it has none. */
export function passwdEntry(uid: number): { name: string; gid: number } | undefined {
  try {
    const [name, , , gid] = execFileSync('getent', ['passwd', String(uid)], { encoding: 'utf8' })
      .trim()
      .split(':');
    return name && gid ? { name, gid: Number(gid) } : undefined;
  } catch {
    return undefined;
  }
}

/** The name of `uid`, or "uid N" when the user database has none. */
export function userName(uid: number): string {
  return passwdEntry(uid)?.name ?? `uid ${uid}`;
}
