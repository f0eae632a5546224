/**
 * The MTA-STS policy posta publishes for each domain (RFC 8461 §3.2) and the
 * id of its _mta-sts TXT record, which must change whenever the policy does:
 * the id is derived from the policy text itself.
 */
import { createHash } from 'node:crypto';

export type StsMode = 'testing' | 'enforce' | 'none';

export function stsPolicy(opts: { mode: StsMode; mx: string; maxAge: number }): string {
  return `version: STSv1\r\nmode: ${opts.mode}\r\nmx: ${opts.mx}\r\nmax_age: ${opts.maxAge}\r\n`;
}

/** 1 to 32 alphanumeric characters (RFC 8461 §3.1). */
export function stsPolicyId(policy: string): string {
  return createHash('sha256').update(policy).digest('hex').slice(0, 20);
}
