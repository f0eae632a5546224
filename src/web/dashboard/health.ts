/**
 * The overview's DNS health: doctor's checks of each domain (domain-check.ts)
 * counted as failures and warnings. A result is kept for TTL_MS, so a page
 * reloaded or open in two tabs does not query DNS again; nothing runs until a
 * page asks, and two asking at once share one run.
 */
import type { Report } from '../../doctor/report.ts';

export interface Health {
  domain: string;
  /** When the checks ran (ms since the epoch). */
  at: number;
  failures: number;
  warnings: number;
  /** Why the checks could not run; the counts are 0 then. */
  error?: string;
}

export const TTL_MS = 5 * 60_000;

export class HealthCache {
  private readonly check: (domain: string) => Promise<Report>;
  private readonly now: () => number;
  private readonly kept = new Map<string, { at: number; health: Promise<Health> }>();

  constructor(opts: { check: (domain: string) => Promise<Report>; now?: () => number }) {
    this.check = opts.check;
    this.now = opts.now ?? Date.now;
  }

  /** Each domain's health, from the last TTL_MS or checked now. */
  async of(domains: readonly string[]): Promise<Health[]> {
    const now = this.now();
    // a domain no longer served is forgotten
    for (const d of this.kept.keys()) if (!domains.includes(d)) this.kept.delete(d);
    return Promise.all(
      domains.map((domain) => {
        const k = this.kept.get(domain);
        if (k && now - k.at < TTL_MS) return k.health;
        const health = this.run(domain, now);
        this.kept.set(domain, { at: now, health });
        return health;
      }),
    );
  }

  private async run(domain: string, at: number): Promise<Health> {
    try {
      const { checks } = await this.check(domain);
      const count = (s: string) => checks.filter((c) => c.status === s).length;
      return { domain, at, failures: count('fail'), warnings: count('warn') };
    } catch (err) {
      return { domain, at, failures: 0, warnings: 0, error: (err as Error).message };
    }
  }
}
