/**
 * The running server's side of a DKIM key rotation (rotation.ts): at start,
 * every `intervalMs` and whenever the config folder changes, each domain with
 * a plan that has not switched is checked: are the records of all its new
 * keys visible in DNS, each with its key's p= (published.ts, the doctor's
 * check), and is `after` past? Then the new keys take over: the switch is
 * recorded in the data folder (switches.ts) and logged with the date from
 * which the old records may be removed. A failed write is logged and the
 * switch holds in memory; a DNS failure is "not yet", never a switch.
 *
 * It also logs, once per run, when a rotation's grace is over.
 */
import type { ResolveFn } from '../dns/resolver.ts';
import type { Logger } from '../log/log.ts';
import type { Directory } from '../domains/directory.ts';
import { keyRecordProblem } from './published.ts';
import { maySwitch, removableAt } from './rotation.ts';
import type { SwitchLog } from './switches.ts';

export interface RotatorOptions {
  directory: Pick<Directory, 'names' | 'allKeys' | 'rotation'>;
  switches: SwitchLog;
  /**
   * A resolver for one round: a fresh one, not delivery's cache, so that a
   * record published since the last round is seen (a "no such name" is
   * cached for half a minute there).
   */
  resolver: () => ResolveFn;
  log: Logger;
  intervalMs: number;
  now: () => Date;
}

export interface Rotator {
  /** A round of checks (also run by the timer); rounds never overlap. */
  check(): Promise<void>;
  stop(): void;
}

export function startRotator(o: RotatorOptions): Rotator {
  /** What was last logged per domain, so a check that finds the same says nothing. */
  const said = new Map<string, string>();
  const tell = (domain: string, what: string, log: () => void) => {
    if (said.get(domain) === what) return;
    said.set(domain, what);
    log();
  };

  async function checkDomain(domain: string, resolve: ResolveFn): Promise<void> {
    const r = o.directory.rotation(domain);
    if (!r) return;
    const { plan } = r;
    const now = o.now();
    if (r.switchedAt) {
      const until = removableAt(plan, r.switchedAt);
      if (now >= until) {
        tell(domain, 'removable', () =>
          o.log.info(
            { domain, old: plan.oldSelectors },
            'dkim rotation: the grace is over; the old DKIM records may be removed (posta dkim rotate --finish)',
          ),
        );
      }
      return;
    }
    const keys = o.directory.allKeys(domain);
    const problems: string[] = [];
    for (const selector of plan.newSelectors) {
      const key = keys.find((k) => k.selector === selector);
      const problem = key
        ? await keyRecordProblem(resolve, domain, key).catch(
            (err: Error) => `could not look up ${selector}._domainkey.${domain}: ${err.message}`,
          )
        : `there is no key file for ${selector}`;
      if (problem) problems.push(problem);
    }
    if (!maySwitch(plan, now, problems.length === 0)) {
      const waiting = problems.length
        ? problems.join('; ')
        : `not before ${plan.after?.toISOString()}`;
      tell(domain, waiting, () =>
        o.log.info(
          { domain, pending: plan.newSelectors, waiting },
          'dkim rotation: still signing with the old keys',
        ),
      );
      return;
    }
    const keepUntil = removableAt(plan, now).toISOString();
    try {
      await o.switches.record(domain, plan.newSelectors, now);
    } catch (err) {
      o.log.error(
        { domain, err: (err as Error).message },
        'dkim rotation: could not record the switch in the data folder; it holds until posta stops, and the next start checks DNS again',
      );
    }
    said.set(domain, 'switched');
    o.log.info(
      { domain, selectors: plan.newSelectors, old: plan.oldSelectors, keepUntil },
      'dkim rotation: the new records are published; signing with the new keys now',
    );
  }

  // A round asked for while one runs follows it: the running one may have read the old plan.
  let running: Promise<void> | null = null;
  let again = false;
  const round = async () => {
    const resolve = o.resolver();
    for (const domain of o.directory.names()) {
      await checkDomain(domain, resolve).catch((err: Error) =>
        o.log.error({ domain, err: err.message }, 'dkim rotation: the check failed'),
      );
    }
  };
  const check = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await round();
        } while (again);
      } finally {
        running = null;
      }
    })();
    return running;
  };
  const timer = setInterval(() => void check(), o.intervalMs);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}
