/**
 * Sending accounts of one domain: the file domains/DOMAIN/users.
 *
 * Format, one account a line, diff-friendly and safe to commit:
 *   # comment
 *   LOCAL-PART PASSWORD-HASH [send-as=domain]
 * `send-as=domain` lets the account use any address of its domain as sender;
 * without it an account may send only as itself. Comments and blank lines are
 * kept when posta edits the file. Edits take a lock and replace the file
 * atomically (fsutil), so two `posta user` runs at once lose nothing.
 */
import { readFile } from 'node:fs/promises';
import { PostaError } from '../errors.ts';
import { parseLocalPart } from '../address/address.ts';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { fsErrorSentence } from '../fsutil/errors.ts';
import { withLock } from '../fsutil/lock.ts';
import { isPasswordHash } from './hash.ts';

export interface Account {
  local: string;
  hash: string;
  sendAsDomain: boolean;
}

type Line = { kind: 'text'; text: string } | { kind: 'account'; account: Account };

export const USERS_HEADER = [
  '# posta sending accounts, one a line: LOCAL-PART PASSWORD-HASH [send-as=domain]',
  '# Manage with `posta user add|del|passwd`. The hashes are argon2id; the passwords are not stored.',
];

export class UserFile {
  private readonly lines: Line[];
  constructor(lines: Line[]) {
    this.lines = lines;
  }

  static parse(file: string, text: string): UserFile {
    const lines: Line[] = text
      .split('\n')
      .map((raw, i) => parseLine(file, i + 1, raw))
      .filter((l, i, all) => !(i === all.length - 1 && l.kind === 'text' && l.text === ''));
    return new UserFile(lines);
  }

  accounts(): Account[] {
    return this.lines.flatMap((l) => (l.kind === 'account' ? [l.account] : []));
  }

  get(local: string): Account | undefined {
    return this.accounts().find((a) => a.local === local);
  }

  set(account: Account): void {
    const at = this.lines.findIndex(
      (l) => l.kind === 'account' && l.account.local === account.local,
    );
    if (at >= 0) this.lines[at] = { kind: 'account', account };
    else this.lines.push({ kind: 'account', account });
  }

  delete(local: string): boolean {
    const at = this.lines.findIndex((l) => l.kind === 'account' && l.account.local === local);
    if (at >= 0) this.lines.splice(at, 1);
    return at >= 0;
  }

  toString(): string {
    return this.lines
      .map((l) =>
        l.kind === 'text'
          ? l.text
          : `${l.account.local} ${l.account.hash}${l.account.sendAsDomain ? ' send-as=domain' : ''}`,
      )
      .map((s) => `${s}\n`)
      .join('');
  }
}

function parseLine(file: string, n: number, raw: string): Line {
  const text = raw.replace(/\r$/, '');
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'text', text };
  const [local = '', hash = '', ...opts] = trimmed.split(/\s+/);
  const where = `${file} line ${n}`;
  const lp = parseLocalPart(local);
  if (!lp.ok) throw new PostaError(`${where}: ${lp.error}; fix or remove the line.`);
  if (!isPasswordHash(hash)) {
    throw new PostaError(
      `${where}: the second field is not a posta password hash; set it with \`posta user passwd\`.`,
    );
  }
  for (const o of opts) {
    if (o !== 'send-as=domain') {
      throw new PostaError(`${where}: unknown option "${o}"; the only option is send-as=domain.`);
    }
  }
  return { kind: 'account', account: { local: lp.value, hash, sendAsDomain: opts.length > 0 } };
}

export async function readUsers(file: string): Promise<UserFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return UserFile.parse(file, '');
    throw new PostaError(fsErrorSentence(err) ?? `Cannot read ${file}: ${(err as Error).message}.`);
  }
  return UserFile.parse(file, text);
}

/** Read, change and atomically rewrite the users file under a lock. */
export async function editUsers<T>(file: string, fn: (users: UserFile) => T): Promise<T> {
  return withLock(file, async () => {
    const users = await readUsers(file);
    const result = fn(users);
    await writeFileAtomic(file, users.toString(), 0o640);
    return result;
  });
}
