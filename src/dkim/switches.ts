/**
 * Where a rotation's state is kept on disk, and a domain's keys read with it.
 *
 * - The plan: domains/DOMAIN/dkim/rotation in the config folder (rotation.ts
 *   has its format), written by `posta dkim rotate`, removed by `--finish`.
 * - The switch: DATA/dkim-switches.json, written by the running server when it
 *   has seen the new records and starts signing with the new keys:
 *   `{"example.com": {"selectors": ["20261201r", "20261201e"], "at": "ISO"}}`.
 *   A record counts only for the plan whose new selectors it names, so one
 *   left from an earlier rotation never switches a later one. The data folder
 *   is the server's to write; the config folder may be read-only to it.
 *
 * Losing the switch file loses nothing that matters: the server checks again
 * at start, finds the new records published, and switches again (its grace
 * then counts from that moment, which is only longer).
 */
import { readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PostaError } from '../errors.ts';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { dkimDir } from '../config/paths.ts';
import { loadKeys, type DkimKey } from './keys.ts';
import { parseRotation, formatRotation, ROTATION_FILE, type RotationPlan } from './rotation.ts';

export const SWITCH_FILE = 'dkim-switches.json';

export const rotationFile = (configDir: string, domain: string) =>
  join(dkimDir(configDir, domain), ROTATION_FILE);

/** The plan of DOMAIN, or null when no rotation is under way. */
export async function readPlan(configDir: string, domain: string): Promise<RotationPlan | null> {
  const file = rotationFile(configDir, domain);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PostaError(`Cannot read ${file}: ${(err as Error).message}.`);
  }
  return parseRotation(file, text);
}

export async function writePlan(configDir: string, domain: string, plan: RotationPlan) {
  await writeFileAtomic(rotationFile(configDir, domain), formatRotation(domain, plan), 0o600);
}

export async function removePlan(configDir: string, domain: string): Promise<void> {
  await unlink(rotationFile(configDir, domain)).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

interface SwitchRecord {
  selectors: string[];
  at: string;
}

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((s) => b.includes(s));

/** The switches the server has made, by domain; kept in memory when the file cannot be written. */
export class SwitchLog {
  private readonly file: string;
  private records: Record<string, SwitchRecord>;

  private constructor(file: string, records: Record<string, SwitchRecord>) {
    this.file = file;
    this.records = records;
  }

  /** A missing file is an empty log; an unreadable or broken one says so. */
  static async open(dataDir: string): Promise<SwitchLog> {
    const file = join(dataDir, SWITCH_FILE);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new SwitchLog(file, {});
      throw new PostaError(`Cannot read ${file}: ${(err as Error).message}.`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    const records: Record<string, SwitchRecord> = {};
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new PostaError(
        `${file} is not the JSON posta writes; delete it (the server then checks the DNS of each rotation again).`,
      );
    }
    for (const [domain, r] of Object.entries(parsed as Record<string, Partial<SwitchRecord>>)) {
      const at = new Date(r.at ?? NaN);
      if (Array.isArray(r.selectors) && !Number.isNaN(at.getTime())) {
        records[domain] = { selectors: r.selectors.map(String), at: at.toISOString() };
      }
    }
    return new SwitchLog(file, records);
  }

  /** When the server switched to `plan`'s new keys, or null when it has not. */
  get(domain: string, plan: RotationPlan | null): Date | null {
    const r = this.records[domain];
    if (!plan || !r || !sameSet(r.selectors, plan.newSelectors)) return null;
    return new Date(r.at);
  }

  /**
   * Records the switch, in memory first: a failed write (reported by the
   * throw) leaves the switch in force for this run.
   */
  async record(domain: string, selectors: readonly string[], at: Date): Promise<void> {
    this.records = {
      ...this.records,
      [domain]: { selectors: [...selectors], at: at.toISOString() },
    };
    await writeFileAtomic(this.file, `${JSON.stringify(this.records, null, 2)}\n`, 0o600);
  }
}

/** A domain's keys with its rotation, as the server and the CLI see them. */
export interface DomainKeys {
  keys: DkimKey[];
  plan: RotationPlan | null;
  switchedAt: Date | null;
}

export async function loadDomainKeys(
  configDir: string,
  domain: string,
  switches: SwitchLog | null,
): Promise<DomainKeys> {
  const plan = await readPlan(configDir, domain);
  return {
    keys: await loadKeys(dkimDir(configDir, domain)),
    plan,
    switchedAt: switches?.get(domain, plan) ?? null,
  };
}
