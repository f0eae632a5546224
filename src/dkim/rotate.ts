/**
 * What `posta dkim rotate` and `posta dkim status` do to and read from the
 * config folder (rotation.ts has the plan and the key states).
 *
 * Starting writes the plan before the new key files, so the server's reload
 * of the dkim/ folder never finds a new key that no plan marks pending (it
 * would sign with it). Finishing deletes the old key files before the plan,
 * for the same reason: a plan that names an old key already gone is fine,
 * an old key without a plan would be active again. Finishing refuses while
 * an old record may still be needed; posta never deletes such a key.
 */
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { PostaError, UsageError } from '../errors.ts';
import { dkimDir, requireDomain } from '../config/paths.ts';
import type { ResolveFn } from '../dns/resolver.ts';
import { freeSelectors, generateKeys, loadKeys, type DkimKey } from './keys.ts';
import { keyRecordProblem } from './published.ts';
import { keyState, removableAt, type KeyState, type RotationPlan } from './rotation.ts';
import { loadDomainKeys, readPlan, removePlan, writePlan, type SwitchLog } from './switches.ts';

const DAY_MS = 86_400_000;
const day = (d: Date) => d.toISOString().slice(0, 10);

export interface StartOptions {
  configDir: string;
  domain: string;
  now: Date;
  after: Date | null;
  graceDays: number;
  /** [delivery] lifetime: a message signed with an old key may wait that long in the queue. */
  lifetimeMs: number;
}

export async function startRotation(
  o: StartOptions,
): Promise<{ plan: RotationPlan; keys: DkimKey[] }> {
  await requireDomain(o.configDir, o.domain);
  if (o.graceDays * DAY_MS < o.lifetimeMs) {
    throw new UsageError(
      `--grace ${o.graceDays} is shorter than [delivery] lifetime (${Math.ceil(o.lifetimeMs / DAY_MS)} days): mail signed with the old keys may wait in the queue that long; give at least that many days.`,
    );
  }
  const current = await readPlan(o.configDir, o.domain);
  if (current) {
    throw new PostaError(
      `A rotation of ${o.domain} to ${current.newSelectors.join(', ')} is under way; \`posta dkim status ${o.domain}\` says where it is, and \`posta dkim rotate ${o.domain} --finish\` ends it once the old records may be removed.`,
    );
  }
  const dir = dkimDir(o.configDir, o.domain);
  const old = await loadKeys(dir);
  if (old.length === 0) {
    throw new PostaError(
      `${dir} has no DKIM key to rotate; restore the keys from your backup (or the git history).`,
    );
  }
  const selectors = await freeSelectors(dir, o.now);
  const plan: RotationPlan = {
    newSelectors: [selectors.rsa, selectors.ed25519],
    oldSelectors: old.map((k) => k.selector),
    started: o.now,
    after: o.after,
    graceDays: o.graceDays,
  };
  await writePlan(o.configDir, o.domain, plan);
  try {
    return { plan, keys: await generateKeys(dir, o.now, selectors) };
  } catch (err) {
    for (const s of plan.newSelectors) {
      for (const alg of ['rsa', 'ed25519'])
        await unlink(join(dir, `${s}.${alg}.key`)).catch(() => {});
    }
    await removePlan(o.configDir, o.domain);
    throw err;
  }
}

/**
 * Deletes the old keys and the plan once their grace is over and no mail
 * signed with them is still queued; returns the keys deleted.
 */
export async function finishRotation(o: {
  configDir: string;
  domain: string;
  switches: SwitchLog;
  now: Date;
  /**
   * Messages still queued that the domain's senders (or posta, a DSN) sent
   * before `at`: they carry the old keys' signatures, and warm-up or retries
   * can keep them past the grace.
   */
  queuedBefore: (domain: string, at: Date) => number;
}): Promise<{ plan: RotationPlan; removed: DkimKey[] }> {
  await requireDomain(o.configDir, o.domain);
  const d = await loadDomainKeys(o.configDir, o.domain, o.switches);
  if (!d.plan) throw new PostaError(`No DKIM key rotation of ${o.domain} is under way.`);
  const { plan } = d;
  if (!d.switchedAt) {
    throw new PostaError(
      `posta has not switched ${o.domain} to the new keys ${plan.newSelectors.join(', ')} yet: publish their records (\`posta dkim status ${o.domain}\` shows them), and posta serve switches once it sees them.`,
    );
  }
  const until = removableAt(plan, d.switchedAt);
  if (o.now < until) {
    throw new PostaError(
      `The old keys ${plan.oldSelectors.join(', ')} of ${o.domain} are still needed until ${until.toISOString()} (mail signed with them is still being delivered and verified); run this again then.`,
    );
  }
  const waiting = o.queuedBefore(o.domain, d.switchedAt);
  if (waiting > 0) {
    throw new PostaError(
      `${waiting} message${waiting === 1 ? '' : 's'} queued before the switch of ${o.domain} (${d.switchedAt.toISOString()}) ${waiting === 1 ? 'is' : 'are'} still in the queue, signed with the old keys ${plan.oldSelectors.join(', ')}: their records are needed until ${waiting === 1 ? 'it leaves' : 'they leave'} it (\`posta queue list\`); run this again then.`,
    );
  }
  const removed = d.keys.filter((k) => plan.oldSelectors.includes(k.selector));
  for (const k of removed) await unlink(k.file);
  await removePlan(o.configDir, o.domain);
  return { plan, removed };
}

export interface KeyStatus {
  selector: string;
  algorithm: string;
  state: KeyState | 'missing';
  /** For pending keys: null when the record is published as it should be; else what is wrong. */
  record?: string | null;
}

export interface RotationStatus {
  domain: string;
  keys: KeyStatus[];
  plan: RotationPlan | null;
  switchedAt: Date | null;
  /** When the old records may be removed (after the switch). */
  removableAt: Date | null;
  /** One sentence: where the rotation is and what to do. */
  summary: string;
}

/** Where the rotation of `domain` is; the DNS of pending keys is asked with `resolve`. */
export async function rotationStatus(o: {
  configDir: string;
  domain: string;
  switches: SwitchLog | null;
  resolve: ResolveFn;
  now: Date;
}): Promise<RotationStatus> {
  await requireDomain(o.configDir, o.domain);
  const d = await loadDomainKeys(o.configDir, o.domain, o.switches);
  const { plan, switchedAt } = d;
  const keys: KeyStatus[] = [];
  for (const k of d.keys) {
    const state = keyState(k.selector, plan, switchedAt, o.now);
    const record =
      state === 'pending'
        ? await keyRecordProblem(o.resolve, o.domain, k).catch(
            (err: Error) => `could not look it up: ${err.message}`,
          )
        : undefined;
    keys.push({ selector: k.selector, algorithm: k.algorithm, state, record });
  }
  for (const s of plan?.newSelectors ?? []) {
    if (!keys.some((k) => k.selector === s))
      keys.push({ selector: s, algorithm: '?', state: 'missing' });
  }
  const until = plan && switchedAt ? removableAt(plan, switchedAt) : null;
  return { domain: o.domain, keys, plan, switchedAt, removableAt: until, summary: summary() };

  function summary(): string {
    if (!plan) return `No rotation under way; \`posta dkim rotate ${o.domain}\` starts one.`;
    if (!switchedAt) {
      const waiting = keys.filter((k) => k.state === 'pending' && k.record !== null);
      const after =
        plan.after && o.now < plan.after ? ` and not before ${plan.after.toISOString()}` : '';
      return waiting.length || keys.some((k) => k.state === 'missing')
        ? `Signing with the old keys until the new records are published${after}: publish them (\`posta dns ${o.domain}\` prints them).`
        : `The new records are published; posta serve switches to the new keys at its next check${after}.`;
    }
    if (until && o.now < until) {
      return `Signing with the new keys since ${switchedAt.toISOString()}; keep the old records published until ${until.toISOString()}.`;
    }
    return `The old records may be removed since ${day(until ?? o.now)}; \`posta dkim rotate ${o.domain} --finish\` deletes the old keys.`;
  }
}
