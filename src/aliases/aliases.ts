/**
 * Aliases of one domain: the file domains/DOMAIN/aliases, in chasquid's (and
 * sendmail's) format:
 *   # comment
 *   sales: alice, bob@example.org      # a bare local part means this domain
 *   *: me@gmail.com                    # catch-all for every other address
 * One alias a line; targets separated by commas. chasquid's pipe targets
 * ("| command") are refused: posta runs no programs for mail. So are a target
 * that is the alias itself and a wildcard target ("*@gmail.com"): a "*" is a
 * catch-all only on the left. Comments and blank
 * lines are kept when posta edits the file, which stays editable by hand.
 */
import { readFile } from 'node:fs/promises';
import { PostaError } from '../errors.ts';
import { formatAddress, parseAddress, parseLocalPart } from '../address/address.ts';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { fsErrorSentence } from '../fsutil/errors.ts';
import { withLock } from '../fsutil/lock.ts';

export const CATCH_ALL = '*';

/**
 * The mailboxes every mail domain must have, which posta's DNS records name:
 * postmaster (RFC 5321 §4.5.1; DMARC and TLS-RPT reports) and abuse (RFC 2142 §2).
 */
export const ROLE_ALIASES = ['postmaster', 'abuse'] as const;

export interface Alias {
  /** A normalised local part, or "*" for the catch-all. */
  local: string;
  /** Full, normalised addresses. */
  targets: string[];
}

type Line = { kind: 'text'; text: string } | { kind: 'alias'; alias: Alias };

export const ALIASES_HEADER = [
  '# posta aliases: "local: target, target". A bare local part means this domain;',
  '# "*: target" catches every other address. Edit by hand or with `posta alias`.',
];

export class AliasFile {
  private readonly lines: Line[];
  constructor(lines: Line[]) {
    this.lines = lines;
  }

  static parse(file: string, domain: string, text: string): AliasFile {
    const lines = text.split('\n').map((raw, i) => parseLine(file, domain, i + 1, raw));
    if (lines.at(-1)?.kind === 'text' && (lines.at(-1) as { text: string }).text === '')
      lines.pop();
    return new AliasFile(lines);
  }

  aliases(): Alias[] {
    return this.lines.flatMap((l) => (l.kind === 'alias' ? [l.alias] : []));
  }

  get(local: string): Alias | undefined {
    return this.aliases().find((a) => a.local === local);
  }

  /** Add targets to an alias, creating it when new; targets already there are kept once. */
  add(local: string, targets: string[]): void {
    const existing = this.get(local);
    if (existing) {
      for (const t of targets) if (!existing.targets.includes(t)) existing.targets.push(t);
    } else {
      this.lines.push({ kind: 'alias', alias: { local, targets: [...new Set(targets)] } });
    }
  }

  /** Remove some targets, or the whole alias when none are named. False when nothing matched. */
  remove(local: string, targets: string[] = []): boolean {
    const at = this.lines.findIndex((l) => l.kind === 'alias' && l.alias.local === local);
    const line = this.lines[at];
    if (!line || line.kind !== 'alias') return false;
    if (targets.length === 0) {
      this.lines.splice(at, 1);
      return true;
    }
    const before = line.alias.targets.length;
    line.alias.targets = line.alias.targets.filter((t) => !targets.includes(t));
    if (line.alias.targets.length === 0) this.lines.splice(at, 1);
    return line.alias.targets.length !== before;
  }

  toString(): string {
    return this.lines
      .map((l) => (l.kind === 'text' ? l.text : `${l.alias.local}: ${l.alias.targets.join(', ')}`))
      .map((s) => `${s}\n`)
      .join('');
  }
}

/** A target as written in the file or on the command line, made a full address. */
export function parseTarget(domain: string, text: string): string {
  const t = text.trim();
  if (t.startsWith('|')) {
    throw new PostaError(`"${t}" is a pipe target; posta forwards to addresses only.`);
  }
  const a = parseAddress(t.includes('@') ? t : `${t}@${domain}`);
  if (!a.ok) throw new PostaError(`${a.error}.`);
  // A bare "*" is the wildcard too, not the mailbox *@DOMAIN.
  if (a.value.local === CATCH_ALL) {
    throw new PostaError(
      `"${t}" is a wildcard; a target is one address (a catch-all is "*: target" in its own domain).`,
    );
  }
  return formatAddress(a.value);
}

/** Refuses an alias that names itself among its targets: mail to it would go nowhere. */
export function checkAlias(alias: Alias, domain: string): void {
  const self = `${alias.local}@${domain}`;
  if (alias.targets.includes(self)) {
    throw new PostaError(`${self} points at itself; name the addresses it forwards to.`);
  }
}

export function parseAliasLocal(text: string): string {
  const t = text.trim();
  if (t === CATCH_ALL) return CATCH_ALL;
  const lp = parseLocalPart(t);
  if (!lp.ok) throw new PostaError(`${lp.error}.`);
  return lp.value;
}

function parseLine(file: string, domain: string, n: number, raw: string): Line {
  const text = raw.replace(/\r$/, '');
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return { kind: 'text', text };
  const where = `${file} line ${n}`;
  const colon = trimmed.indexOf(':');
  if (colon < 0) {
    throw new PostaError(`${where}: "${trimmed}" has no colon; write "local: target, target".`);
  }
  try {
    const local = parseAliasLocal(trimmed.slice(0, colon));
    const targets = trimmed
      .slice(colon + 1)
      .split(',')
      .filter((t) => t.trim() !== '')
      .map((t) => parseTarget(domain, t));
    if (targets.length === 0) throw new PostaError(`the alias "${local}" has no target.`);
    checkAlias({ local, targets }, domain);
    return { kind: 'alias', alias: { local, targets } };
  } catch (err) {
    throw new PostaError(`${where}: ${(err as Error).message}`);
  }
}

export async function readAliases(file: string, domain: string): Promise<AliasFile> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new PostaError(
        fsErrorSentence(err) ?? `Cannot read ${file}: ${(err as Error).message}.`,
      );
    }
  }
  return AliasFile.parse(file, domain, text);
}

export async function editAliases<T>(
  file: string,
  domain: string,
  fn: (aliases: AliasFile) => T,
): Promise<T> {
  return withLock(file, async () => {
    const aliases = await readAliases(file, domain);
    const result = fn(aliases);
    await writeFileAtomic(file, aliases.toString());
    return result;
  });
}
