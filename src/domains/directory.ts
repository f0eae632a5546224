/**
 * The local domains as the running server sees them: accounts, aliases and
 * DKIM keys of each, read from the config folder and re-read when a file
 * changes (checked every few seconds), so `posta user add` or a hand edit of
 * an aliases file takes effect without a restart. (posta.toml is not
 * re-read: config/watch.ts logs that a change of it needs a restart.)
 *
 * A domain's keys are all those in its dkim/ folder; keys() gives the ones
 * that sign now: during a rotation (dkim/rotation.ts) not the pending new
 * ones, and after the switch (which `switched` tells) not the old ones.
 */
import { listDomains } from '../config/load.ts';
import { fileStamp } from '../fsutil/stamp.ts';
import { aliasesFile, dkimDir, usersFile } from '../config/paths.ts';
import { readUsers, type Account } from '../users/userdb.ts';
import { readAliases, type Alias } from '../aliases/aliases.ts';
import { loadKeys, type DkimKey } from '../dkim/keys.ts';
import { signingKeys, type RotationPlan } from '../dkim/rotation.ts';
import { readPlan, rotationFile } from '../dkim/switches.ts';
import { findAlias, resolveAddress } from '../aliases/resolve.ts';

interface DomainState {
  accounts: Map<string, Account>;
  aliases: Alias[];
  keys: DkimKey[];
  plan: RotationPlan | null;
  stamp: string;
}

export interface DirectoryOptions {
  /** When the server switched DOMAIN to `plan`'s new keys; null: not yet. */
  switched?: (domain: string, plan: RotationPlan) => Date | null;
}

const BROKEN_RETRY_MS = 60_000;

export class Directory {
  private readonly dir: string;
  private domains = new Map<string, DomainState>();
  /**
   * Domain → the stamp of files that did not load and when, so a broken edit
   * is reported once, and tried again a minute later (a passing error such as
   * too many open files clears itself).
   */
  private readonly broken = new Map<string, { stamp: string; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly switched: NonNullable<DirectoryOptions['switched']>;

  private constructor(dir: string, o: DirectoryOptions) {
    this.dir = dir;
    this.switched = o.switched ?? (() => null);
  }

  /** Loads every domain; errors (a bad users line, a broken key) stop start-up. */
  static async load(dir: string, o: DirectoryOptions = {}): Promise<Directory> {
    const d = new Directory(dir, o);
    await d.refresh(true);
    return d;
  }

  /**
   * Re-read changed files every `ms`. `onChange` gets the domains whose new
   * state is in use; a broken edit goes to `onError` once, and that domain
   * keeps its previous state until its files change again.
   */
  watch(ms: number, onChange: (domains: string[]) => void, onError: (err: Error) => void): void {
    this.timer = setInterval(() => {
      this.refresh(false).then(({ changed, errors }) => {
        errors.forEach(onError);
        if (changed.length) onChange(changed);
      }, onError);
    }, ms);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async refresh(strict: boolean): Promise<{ changed: string[]; errors: Error[] }> {
    const next = new Map<string, DomainState>();
    const changed: string[] = [];
    const errors: Error[] = [];
    for (const domain of await listDomains(this.dir)) {
      const stamp = await this.stamp(domain);
      const old = this.domains.get(domain);
      const failed = this.broken.get(domain);
      const retryLater = failed?.stamp === stamp && Date.now() - failed.at < BROKEN_RETRY_MS;
      if (old?.stamp === stamp || retryLater) {
        if (old) next.set(domain, old);
        continue;
      }
      try {
        next.set(domain, await this.read(domain, stamp));
        this.broken.delete(domain);
        changed.push(domain);
      } catch (err) {
        if (strict) throw err;
        this.broken.set(domain, { stamp, at: Date.now() });
        if (old) next.set(domain, old);
        errors.push(err as Error);
      }
    }
    for (const domain of this.domains.keys()) if (!next.has(domain)) changed.push(domain);
    this.domains = next;
    return { changed, errors };
  }

  private async read(domain: string, stamp: string): Promise<DomainState> {
    const users = await readUsers(usersFile(this.dir, domain));
    const aliases = await readAliases(aliasesFile(this.dir, domain), domain);
    const { keys, plan } = await this.readKeys(domain);
    return {
      accounts: new Map(users.accounts().map((a) => [a.local, a])),
      aliases: aliases.aliases(),
      keys,
      plan,
      stamp,
    };
  }

  /**
   * The keys and the rotation plan as of one moment: `posta dkim rotate`
   * writes the plan before new keys, and --finish deletes old keys before
   * the plan, so keys read beside a plan read either side of a change could
   * make an unpublished or a removed key sign. The plan is read before and
   * after the keys, until both reads agree.
   */
  private async readKeys(domain: string) {
    for (let i = 0; ; i++) {
      const before = await readPlan(this.dir, domain);
      const keys = await loadKeys(dkimDir(this.dir, domain));
      const plan = await readPlan(this.dir, domain);
      if (JSON.stringify(before) === JSON.stringify(plan) || i >= 4) return { keys, plan };
    }
  }

  private async stamp(domain: string): Promise<string> {
    const parts = [];
    for (const f of [
      usersFile(this.dir, domain),
      aliasesFile(this.dir, domain),
      dkimDir(this.dir, domain),
      rotationFile(this.dir, domain),
    ]) {
      parts.push(await fileStamp(f).catch(() => '-'));
    }
    return parts.join('|');
  }

  isLocal(domain: string): boolean {
    return this.domains.has(domain);
  }

  names(): string[] {
    return [...this.domains.keys()];
  }

  account(local: string, domain: string): Account | undefined {
    return this.domains.get(domain)?.accounts.get(local);
  }

  /** The keys that sign for `domain` now. */
  keys(domain: string): readonly DkimKey[] {
    const d = this.domains.get(domain);
    if (!d) return [];
    return d.plan ? signingKeys(d.keys, d.plan, this.switched(domain, d.plan)) : d.keys;
  }

  /** Every key of `domain`, pending and retiring ones too (to verify or publish them). */
  allKeys(domain: string): readonly DkimKey[] {
    return this.domains.get(domain)?.keys ?? [];
  }

  /** The rotation under way for `domain`, and when the server switched (null: not yet). */
  rotation(domain: string): { plan: RotationPlan; switchedAt: Date | null } | null {
    const plan = this.domains.get(domain)?.plan;
    return plan ? { plan, switchedAt: this.switched(domain, plan) } : null;
  }

  /** Targets of the alias named exactly local@domain (no +suffix, no catch-all). */
  directAliasTargets(local: string, domain: string): string[] {
    return this.domains.get(domain)?.aliases.find((a) => a.local === local)?.targets ?? [];
  }

  /** Does a local address have an alias (exact, +suffix or catch-all)? */
  hasAlias(address: string): boolean {
    const at = address.lastIndexOf('@');
    const aliases = this.domains.get(address.slice(at + 1))?.aliases;
    return aliases !== undefined && findAlias(address.slice(0, at), aliases) !== undefined;
  }

  /**
   * Final destinations of an address (aliases expanded); [] for an unknown
   * local address, or for one whose aliases only lead back to each other.
   */
  resolve(address: string): string[] {
    return resolveAddress(address, (d) => this.domains.get(d)?.aliases);
  }
}
