/**
 * DKIM key rotation of one domain: the plan, and the state of each key under it.
 *
 * `posta dkim rotate DOMAIN` adds two new keys beside the old ones and writes
 * the plan to domains/DOMAIN/dkim/rotation (TOML, in the config folder, so it
 * is in git and can be read and edited by hand):
 *
 *   new = ["20261201r", "20261201e"]        # the keys that take over
 *   old = ["20260101r", "20260101e"]        # the keys they replace
 *   started = 2026-12-01T10:00:00.000Z
 *   after = 2026-12-15T00:00:00.000Z        # optional: not before this time
 *   grace_days = 7                          # old records stay published this long
 *
 * A key goes pending → active (new keys) or active → retiring → retired (old
 * keys). The switch is one moment for the whole domain, observed by the server
 * and recorded in the data folder (switches.ts), never in the plan: the
 * config folder may be read-only to the server (posta install-service makes
 * it so).
 *
 * Invariants:
 * - Before the switch the new keys never sign; after it the old ones never do.
 *   A key the plan does not name is active throughout.
 * - The switch happens only once every new key's record is visible in DNS with
 *   that key's p= (published.ts), and not before `after`: a signature whose
 *   selector has no record fails at every receiver (RFC 6376 §6.1.2).
 * - The old records must stay published for grace_days after the switch:
 *   mail signed before it is still in queues (posta's own keeps a message for
 *   [delivery] lifetime), forwarded, or verified again later.
 */
import { parse as parseToml, TomlError } from 'smol-toml';
import { PostaError } from '../errors.ts';

export const ROTATION_FILE = 'rotation';
export const DEFAULT_GRACE_DAYS = 7;
const DAY_MS = 86_400_000;

export interface RotationPlan {
  newSelectors: string[];
  oldSelectors: string[];
  started: Date;
  /** The switch waits for this time too (the records must be visible anyway). */
  after: Date | null;
  graceDays: number;
}

export type KeyState = 'active' | 'pending' | 'retiring' | 'retired';

const SELECTOR = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function selectors(file: string, v: unknown, key: string): string[] {
  if (!Array.isArray(v) || v.length === 0 || !v.every((s) => typeof s === 'string')) {
    throw new PostaError(`${file}: ${key} must be a list of selectors, like ["20261201r"].`);
  }
  for (const s of v) {
    if (!SELECTOR.test(s)) {
      throw new PostaError(`${file}: ${key} has "${s}", which is not a selector (a DNS label).`);
    }
  }
  return v;
}

function date(file: string, v: unknown, key: string): Date {
  const d = v instanceof Date ? v : typeof v === 'string' ? new Date(v) : new Date(NaN);
  if (Number.isNaN(d.getTime())) {
    throw new PostaError(`${file}: ${key} must be a date and time, like 2026-12-01T10:00:00Z.`);
  }
  return new Date(d.getTime());
}

/** The plan in `text`; an error names the file, the key and what is allowed. */
export function parseRotation(file: string, text: string): RotationPlan {
  let t: Record<string, unknown>;
  try {
    t = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line})` : '';
    throw new PostaError(
      `${file} is not valid TOML${where}: ${(err as Error).message.split('\n')[0]?.replace(/^Invalid TOML document: /, '')}.`,
    );
  }
  const known = new Set(['new', 'old', 'started', 'after', 'grace_days']);
  const unknown = Object.keys(t).find((k) => !known.has(k));
  if (unknown) {
    throw new PostaError(`${file}: unknown key ${unknown}; allowed are ${[...known].join(', ')}.`);
  }
  const grace = t.grace_days ?? DEFAULT_GRACE_DAYS;
  if (typeof grace !== 'number' || !Number.isInteger(grace) || grace < 0 || grace > 365) {
    throw new PostaError(`${file}: grace_days must be a whole number of days from 0 to 365.`);
  }
  const plan: RotationPlan = {
    newSelectors: selectors(file, t.new, 'new'),
    oldSelectors: selectors(file, t.old, 'old'),
    started: date(file, t.started, 'started'),
    after: t.after === undefined ? null : date(file, t.after, 'after'),
    graceDays: grace,
  };
  const both = plan.newSelectors.find((s) => plan.oldSelectors.includes(s));
  if (both) throw new PostaError(`${file}: ${both} is in both new and old; it can be in one.`);
  return plan;
}

export function formatRotation(domain: string, plan: RotationPlan): string {
  const list = (l: string[]) => `[${l.map((s) => `"${s}"`).join(', ')}]`;
  return [
    `# DKIM key rotation of ${domain}, written by \`posta dkim rotate\`.`,
    '# posta signs with the old keys until the records of all new keys are',
    '# published (and not before `after`), then with the new ones; the old',
    '# records must stay published grace_days after that switch.',
    '# `posta dkim status` says where it is; `posta dkim rotate --finish` ends it.',
    `new = ${list(plan.newSelectors)}`,
    `old = ${list(plan.oldSelectors)}`,
    `started = ${plan.started.toISOString()}`,
    ...(plan.after ? [`after = ${plan.after.toISOString()}`] : []),
    `grace_days = ${plan.graceDays}`,
    '',
  ].join('\n');
}

/** When the old records may be removed: grace_days after the switch. */
export function removableAt(plan: RotationPlan, switchedAt: Date): Date {
  return new Date(switchedAt.getTime() + plan.graceDays * DAY_MS);
}

export function keyState(
  selector: string,
  plan: RotationPlan | null,
  switchedAt: Date | null,
  now: Date,
): KeyState {
  if (!plan) return 'active';
  if (plan.newSelectors.includes(selector)) return switchedAt ? 'active' : 'pending';
  if (!plan.oldSelectors.includes(selector) || !switchedAt) return 'active';
  return now < removableAt(plan, switchedAt) ? 'retiring' : 'retired';
}

/** The keys that sign now: never a pending one, never an old one after the switch. */
export function signingKeys<K extends { selector: string }>(
  keys: readonly K[],
  plan: RotationPlan | null,
  switchedAt: Date | null,
): K[] {
  if (!plan) return [...keys];
  const out = new Set(switchedAt ? plan.oldSelectors : plan.newSelectors);
  return keys.filter((k) => !out.has(k.selector));
}

/** May the switch happen at `now`, given whether every new record is visible? */
export function maySwitch(plan: RotationPlan, now: Date, visible: boolean): boolean {
  return visible && (plan.after === null || now >= plan.after);
}

/** One line on a rotation under way, for `posta status` and the dashboard. */
export function rotationLine(plan: RotationPlan, switchedAt: Date | null, now: Date): string {
  if (!switchedAt) {
    const after = plan.after && now < plan.after ? `, not before ${plan.after.toISOString()}` : '';
    return `rotating to ${plan.newSelectors.join(', ')}: they sign once their DNS records are published${after}; ${plan.oldSelectors.join(', ')} sign until then`;
  }
  const until = removableAt(plan, switchedAt);
  return now < until
    ? `rotated to ${plan.newSelectors.join(', ')} on ${switchedAt.toISOString()}; keep the records of ${plan.oldSelectors.join(', ')} published until ${until.toISOString()}`
    : `rotated to ${plan.newSelectors.join(', ')}; the records of ${plan.oldSelectors.join(', ')} may be removed since ${until.toISOString()} (posta dkim rotate --finish)`;
}
