/**
 * The overview's DNS health: doctor's checks of each domain (domain-check.ts)
 * counted as failures and warnings. A result is kept for TTL_MS (one that
 * could not be had, ERROR_TTL_MS), so a page reloaded or open in two tabs
 * does not query DNS again; nothing runs until a page asks, two asking at
 * once share one run, and at most CONCURRENCY domains are checked at a time.
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
/** A resolver that timed out once should not show "not checked" for five minutes. */
export const ERROR_TTL_MS = 30_000;
const CONCURRENCY = 4;

export class HealthCache {
  private readonly check: (domain: string) => Promise<Report>;
  private readonly now: () => number;
  private readonly kept = new Map<string, { at: number; ttl: number; health: Promise<Health> }>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

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
        if (k && now - k.at < k.ttl) return k.health;
        const entry = { at: now, ttl: TTL_MS, health: this.run(domain, now) };
        // a run that failed is kept only a little while
        void entry.health.then((h) => {
          if (h.error !== undefined) entry.ttl = ERROR_TTL_MS;
        });
        this.kept.set(domain, entry);
        return entry.health;
      }),
    );
  }

  private async run(domain: string, at: number): Promise<Health> {
    if (this.running >= CONCURRENCY) await new Promise<void>((go) => this.waiting.push(go));
    else this.running++;
    try {
      return await this.checked(domain, at);
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  private async checked(domain: string, at: number): Promise<Health> {
    try {
      const { checks } = await this.check(domain);
      const count = (s: string) => checks.filter((c) => c.status === s).length;
      return { domain, at, failures: count('fail'), warnings: count('warn') };
    } catch (err) {
      return { domain, at, failures: 0, warnings: 0, error: (err as Error).message };
    }
  }
}
