/**
 * SES identities over posta's config folder: a domain in domains/ that a key
 * may send from is a verified identity (posta has its DKIM keys; nothing
 * waits for a verification mail), and its DKIM status is what DNS publishes
 * now, checked as `posta doctor` checks it (doctor/auth-checks.ts) and kept
 * for five minutes: SUCCESS when every selector's record matches the key on
 * disk, PENDING when a record is missing, FAILED when one is wrong,
 * TEMPORARY_FAILURE when DNS did not answer.
 *
 * Used by SES v2 ListEmailIdentities/GetEmailIdentity and SES v1
 * ListIdentities/GetIdentityVerificationAttributes (and its Verify*
 * operations, which only say whether posta already sends for the name).
 */
import { checkDkim } from '../doctor/auth-checks.ts';
import { domainOf } from '../address/address.ts';
import type { Directory } from '../domains/directory.ts';
import type { ResolveFn } from '../dns/resolver.ts';
import type { ApiKey } from '../keys/keys.ts';
import { keyMaySendFrom } from '../keys/keys.ts';

export type DkimStatus = 'SUCCESS' | 'PENDING' | 'FAILED' | 'TEMPORARY_FAILURE';

export interface Identity {
  name: string;
  type: 'DOMAIN' | 'EMAIL_ADDRESS';
  dkim: DkimStatus;
  /** The DKIM selectors of the domain (SES's "Tokens"). */
  selectors: string[];
  /** The key sizes, for CurrentSigningKeyLength. */
  rsaBits: number | undefined;
}

const TTL_MS = 5 * 60_000;

export class Identities {
  private readonly dir: Directory;
  private readonly resolve: ResolveFn;
  private readonly hostname: string;
  private readonly cache = new Map<string, { at: number; status: DkimStatus }>();

  constructor(o: { directory: Directory; resolve: ResolveFn; hostname: string }) {
    this.dir = o.directory;
    this.resolve = o.resolve;
    this.hostname = o.hostname;
  }

  /** The key's domains that are this server's, by name. */
  domains(key: ApiKey): string[] {
    return key.domains.filter((d) => keyMaySendFrom(key, d, (x) => this.dir.isLocal(x))).sort();
  }

  /** A domain or an address of one, when the key may send as it; undefined otherwise. */
  async get(key: ApiKey, name: string): Promise<Identity | undefined> {
    const lower = name.toLowerCase();
    const email = lower.includes('@');
    const domain = email ? domainOf(lower) : lower;
    if (!this.domains(key).includes(domain)) return undefined;
    const keys = this.dir.keys(domain);
    const rsa = keys.find((k) => k.algorithm === 'rsa');
    return {
      name: lower,
      type: email ? 'EMAIL_ADDRESS' : 'DOMAIN',
      dkim: await this.dkim(domain),
      selectors: keys.map((k) => k.selector),
      rsaBits: rsa?.privateKey.asymmetricKeyDetails?.modulusLength,
    };
  }

  private async dkim(domain: string): Promise<DkimStatus> {
    const hit = this.cache.get(domain);
    if (hit && Date.now() - hit.at < TTL_MS) return hit.status;
    let status: DkimStatus;
    try {
      const r = await checkDkim(
        {
          domain,
          hostname: this.hostname,
          resolve: this.resolve,
          sending: { addresses: [], source: 'config' },
          ipFamily: 'prefer-ipv6',
        },
        this.dir.keys(domain),
        `domains/${domain}/dkim`,
      );
      status =
        r.status === 'pass'
          ? 'SUCCESS'
          : / has no key record/.test(r.detail)
            ? 'PENDING'
            : 'FAILED';
    } catch {
      status = 'TEMPORARY_FAILURE';
    }
    this.cache.set(domain, { at: Date.now(), status });
    return status;
  }
}
