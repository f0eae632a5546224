/**
 * MTA-STS (RFC 8461) for outgoing mail: the recipient domain's policy,
 * discovered through its `_mta-sts` TXT record and fetched over HTTPS by
 * mailauth, cached for its max_age (§5.1) in the queue database's
 * sts_policies table, so that a restart does not open a window for a
 * downgrade attack.
 *
 * In "enforce" mode only MX hosts that the policy names may be used, and only
 * over TLS whose certificate verifies for the MX name (§4.1, §4.2); a host
 * that fails either is skipped and, if none is left, the message waits. In
 * "testing" the same checks are only noted.
 */
import type { DNSResolver, MTASTSPolicy } from 'mailauth';
import { prepared, type Db } from '../db/db.ts';
import type { ResolveFn } from '../dns/resolver.ts';

export type StsMode = 'enforce' | 'testing' | 'none';

export interface StsPolicy {
  mode: StsMode;
  /** Does the policy allow this MX host? Always true without a policy. */
  allows(mx: string): boolean;
}

const NONE: StsPolicy = { mode: 'none', allows: () => true };

/** How often a cached policy's TXT id is checked again for a new policy. */
const RECHECK_MS = 3600_000;

export class StsPolicies {
  private readonly db: Db;
  private readonly resolve: ResolveFn;
  private readonly inflight = new Map<string, Promise<StsPolicy>>();

  constructor(db: Db, resolve: ResolveFn) {
    this.db = db;
    this.resolve = resolve;
  }

  get(domain: string): Promise<StsPolicy> {
    let p = this.inflight.get(domain);
    if (!p) {
      p = this.lookup(domain).finally(() => this.inflight.delete(domain));
      this.inflight.set(domain, p);
    }
    return p;
  }

  private async lookup(domain: string): Promise<StsPolicy> {
    const row = prepared(
      this.db,
      'SELECT policy, checked_at FROM sts_policies WHERE domain = ?',
    ).get(domain) as { policy: string; checked_at: number } | undefined;
    let known: MTASTSPolicy | null = row ? (JSON.parse(row.policy) as MTASTSPolicy) : null;
    // mailauth (and its dependencies) load on the first delivery, not at start.
    const { getPolicy, validateMx } = await import('mailauth/lib/mta-sts.js');
    if (!known || !row || Date.now() - row.checked_at > RECHECK_MS) {
      const result = await getPolicy(domain, known, {
        resolver: this.resolve as DNSResolver,
        timeout: 30_000,
      });
      known = result.policy;
      const stored: MTASTSPolicy = { ...known, error: undefined };
      prepared(
        this.db,
        `INSERT INTO sts_policies (domain, policy, checked_at) VALUES (?, ?, ?)
         ON CONFLICT(domain) DO UPDATE SET policy = excluded.policy, checked_at = excluded.checked_at`,
      ).run(domain, JSON.stringify(stored), Date.now());
    }
    const policy = known;
    if (!policy || policy.mode === 'none') return NONE;
    return { mode: policy.mode, allows: (mx) => validateMx(mx, policy).valid };
  }
}
