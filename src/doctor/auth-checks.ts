/**
 * Doctor checks on the records receivers use to authenticate posta's mail:
 *   spf    one `v=spf1` record (RFC 7208 §4.5), valid, at most 10 DNS-querying
 *          terms (§4.6.4), authorising every sending address: evaluated by
 *          mailauth in strict mode as a receiver would, for postmaster@DOMAIN
 *          with HELO hostname
 *   spf-helo the same for the hostname, where bounces (sender <>) are checked
 *   dkim   SELECTOR._domainkey.DOMAIN of every key on disk publishes that
 *          key's public half (RFC 6376 §3.6.1; RFC 8463 for Ed25519); during
 *          a rotation a missing new (pending) or old (retiring) record is a
 *          warning with the record to publish or how long to keep it
 *   dmarc  _dmarc.DOMAIN has one `v=DMARC1` record with a p= tag (RFC 7489 §6.3)
 */
import { isIP } from 'node:net';
import { spf } from 'mailauth/lib/spf/index.js';
import type { DNSResolver } from 'mailauth';
import type { ResolveFn } from '../dns/resolver.ts';
import type { DkimKey } from '../dkim/keys.ts';
import { keyRecordProblem } from '../dkim/published.ts';
import { keyState, removableAt, type RotationPlan } from '../dkim/rotation.ts';
import { dkimRecord, heloSpf, zoneLine } from '../dnsrecords/records.ts';
import type { DnsContext } from './dns-checks.ts';
import { tags, txt } from './lookup.ts';
import { fail, pass, warn, type CheckResult } from './report.ts';

/** RFC 7208 §4.6.4: at most 10 terms that cause DNS queries. */
export const SPF_LOOKUP_LIMIT = 10;
const QUERYING = new Set(['include', 'a', 'mx', 'ptr', 'exists']);

/** RFC 7208 §4.5: records that begin with the version section "v=spf1". */
const isSpf = (record: string) => /^v=spf1(?: |$)/i.test(record);

async function spfRecords(resolve: ResolveFn, name: string): Promise<string[]> {
  return (await txt(resolve, name)).filter(isSpf);
}

/**
 * The DNS-querying terms of a record, those of its include: and redirect=
 * targets included (RFC 7208 §4.6.4), counted without evaluating: a receiver
 * may reach every one of them. Targets with macros cannot be followed.
 */
export async function countSpfLookups(
  resolve: ResolveFn,
  record: string,
  seen = new Set<string>(),
): Promise<number> {
  const terms = record.split(/\s+/).slice(1).filter(Boolean);
  // RFC 7208 §6.1: redirect is ignored when the record has an "all" mechanism.
  const hasAll = terms.some((t) => /^[+\-~?]?all$/i.test(t));
  let n = 0;
  for (const term of terms) {
    const m = /^[+\-~?]?([a-z][a-z0-9_.-]*)([:=/]?)(.*)$/i.exec(term);
    if (!m) continue;
    const name = (m[1] ?? '').toLowerCase();
    const modifier = m[2] === '=';
    const target = (m[3] ?? '').toLowerCase();
    const follows =
      (!modifier && name === 'include') || (modifier && name === 'redirect' && !hasAll);
    if (modifier ? name !== 'redirect' || hasAll : !QUERYING.has(name)) continue;
    n++;
    if (!follows || target.includes('%') || seen.has(target) || n > SPF_LOOKUP_LIMIT) continue;
    seen.add(target);
    const nested = await spfRecords(resolve, target);
    if (nested.length === 1) n += await countSpfLookups(resolve, nested[0] ?? '', seen);
  }
  return n;
}

/** The domain's SPF, as receivers check mail from its senders. */
export function checkSpf(ctx: DnsContext): Promise<CheckResult> {
  const terms = ctx.sending.addresses.map((ip) => `${isIP(ip) === 6 ? 'ip6' : 'ip4'}:${ip}`);
  return checkSpfAt(ctx, {
    id: 'spf',
    name: ctx.domain,
    suggested: `v=spf1 ${terms.length ? terms.join(' ') : 'mx'} -all`,
  });
}

/**
 * The hostname's SPF: a bounce's envelope sender is empty, so receivers
 * check SPF at the HELO name (RFC 7208 §2.3, §2.4) for postmaster@HOSTNAME.
 * A hostname that is the domain itself is the check above.
 */
export function checkHeloSpf(ctx: DnsContext): Promise<CheckResult> {
  if (ctx.hostname === ctx.domain) {
    return Promise.resolve(pass('spf-helo', `${ctx.hostname} is the domain: its SPF is above`));
  }
  return checkSpfAt(ctx, {
    id: 'spf-helo',
    name: ctx.hostname,
    suggested: heloSpf(ctx.sending.addresses),
  });
}

async function checkSpfAt(
  ctx: DnsContext,
  at: { id: 'spf' | 'spf-helo'; name: string; suggested: string },
): Promise<CheckResult> {
  const { id, name, suggested } = at;
  const records = await spfRecords(ctx.resolve, name);
  if (records.length === 0) {
    return fail(
      id,
      `${name} has no v=spf1 TXT record${id === 'spf-helo' ? ': bounces from posta fail SPF' : ''}`,
      `publish \`${name}. IN TXT "${suggested}"\``,
    );
  }
  if (records.length > 1) {
    // RFC 7208 §4.5: more than one record is a permerror for every receiver.
    return fail(
      id,
      `${name} has ${records.length} v=spf1 records (${records.map((r) => `"${r}"`).join(', ')}): receivers treat that as a permanent error`,
      'merge them into one record and delete the others',
    );
  }
  const record = records[0] ?? '';
  const lookups = await countSpfLookups(ctx.resolve, record, new Set([name]));
  if (lookups > SPF_LOOKUP_LIMIT) {
    return fail(
      id,
      `"${record}" needs ${lookups} DNS lookups (include, a, mx, ptr, exists, redirect); receivers stop at ${SPF_LOOKUP_LIMIT} with a permanent error`,
      'replace includes with the ip4:/ip6: ranges they stand for until at most 10 remain',
    );
  }
  // With no known address, evaluate for a documentation address (RFC 5737)
  // only to find syntax and lookup errors.
  const ips = ctx.sending.addresses.length ? ctx.sending.addresses : ['192.0.2.1'];
  const results = await Promise.all(
    ips.map(async (ip) => {
      const r = await spf({
        sender: `postmaster@${name}`,
        ip,
        helo: ctx.hostname,
        mta: ctx.hostname,
        resolver: ctx.resolve as DNSResolver,
        strict: true,
        maxElapsedTime: 20_000,
      });
      return { ip, result: r.status.result, comment: r.status.comment ?? '' };
    }),
  );
  const broken = results.find((r) => r.result === 'permerror');
  if (broken) {
    return fail(
      id,
      `"${record}" is not valid: ${broken.comment.replace(/^[^:]*: /, '')}`,
      `fix the record; for this server it can be "${suggested}"`,
    );
  }
  const temporary = results.find((r) => r.result === 'temperror');
  if (temporary) {
    return warn(
      id,
      `could not evaluate "${record}": ${temporary.comment.replace(/^[^:]*: /, '')}`,
      'check that every name the record refers to resolves, then run posta doctor again',
    );
  }
  if (ctx.sending.addresses.length === 0) {
    return warn(
      id,
      `"${record}" is valid; could not tell whether it authorises this server: ${ctx.sending.unknown ?? ''}`,
      'list the server\'s public addresses in `addresses = ["..."]` at the top of posta.toml',
    );
  }
  const refused = results.filter((r) => r.result !== 'pass');
  if (refused.length) {
    const missing = refused.map((r) => `${isIP(r.ip) === 6 ? 'ip6' : 'ip4'}:${r.ip}`);
    return fail(
      id,
      `"${record}" does not authorise ${refused.map((r) => `${r.ip} (${r.result})`).join(', ')}`,
      `add ${missing.join(' ')} to the record before its "all" term`,
    );
  }
  return pass(
    id,
    `"${record}" authorises ${ctx.sending.addresses.join(', ')} (${lookups} DNS lookup${lookups === 1 ? '' : 's'})`,
  );
}

/** A rotation under way (dkim/rotation.ts), for the dkim check to tell pending and retiring keys apart. */
export interface DkimRotation {
  plan: RotationPlan;
  switchedAt: Date | null;
  now: Date;
}

const day = (d: Date) => d.toISOString().slice(0, 10);

export async function checkDkim(
  ctx: DnsContext,
  keys: readonly DkimKey[],
  keyDir: string,
  rotation: DkimRotation | null = null,
): Promise<CheckResult> {
  if (keys.length === 0) {
    return fail(
      'dkim',
      `there is no DKIM key in ${keyDir}: posta signs nothing for ${ctx.domain}`,
      `restore the SELECTOR.rsa.key and SELECTOR.ed25519.key files from your backup (or the git history) into ${keyDir}`,
    );
  }
  const problems: string[] = [];
  const notes: string[] = [];
  const toPublish: string[] = [];
  const ok: string[] = [];
  const plan = rotation?.plan ?? null;
  const switchedAt = rotation?.switchedAt ?? null;
  const until = plan && switchedAt ? removableAt(plan, switchedAt) : null;
  for (const key of keys) {
    const state = keyState(key.selector, plan, switchedAt, rotation?.now ?? new Date());
    const problem = await keyRecordProblem(ctx.resolve, ctx.domain, key);
    const name = `${key.selector} (${key.algorithm})`;
    if (state === 'active') {
      if (problem) problems.push(problem);
      else ok.push(name);
    } else if (state === 'pending') {
      // RFC 6376 §6.1.2: a signature whose selector has no record fails; posta waits for it.
      if (problem) {
        notes.push(`${problem}: the new key ${key.selector} waits for it (the old keys sign)`);
        toPublish.push(zoneLine(dkimRecord(ctx.domain, key)));
      } else {
        ok.push(`${name} new, published: posta signs with it after its next check`);
      }
    } else if (state === 'retiring') {
      const keep = `keep it published until ${day(until ?? new Date())}`;
      if (problem)
        notes.push(
          `${problem}: the old key ${key.selector} signed mail until ${day(switchedAt ?? new Date())}; ${keep}`,
        );
      else ok.push(`${name} old: ${keep}`);
    } else {
      ok.push(
        `${name} old: its record may be removed since ${day(until ?? new Date())} (posta dkim rotate --finish)`,
      );
    }
  }
  if (plan) {
    for (const s of plan.newSelectors.filter((s) => !keys.some((k) => k.selector === s))) {
      notes.push(`the rotation names ${s}, but ${keyDir} has no key file for it`);
    }
  }
  if (problems.length) {
    return fail(
      'dkim',
      [...problems, ...notes].join('; '),
      `publish the DKIM records \`posta dns ${ctx.domain}\` prints (one TXT per selector)`,
    );
  }
  if (notes.length) {
    return warn(
      'dkim',
      [...ok.map((o) => `${o} matches`), ...notes].join('; '),
      toPublish.length
        ? `publish ${toPublish.map((l) => `\`${l}\``).join(' and ')}`
        : `publish the DKIM records \`posta dns ${ctx.domain}\` prints (one TXT per selector)`,
    );
  }
  return pass(
    'dkim',
    plan
      ? `${ok.join('; ')}; all match the keys on disk`
      : `${ok.join(', ')} match the keys on disk`,
  );
}

export async function checkDmarc(ctx: DnsContext): Promise<CheckResult> {
  const name = `_dmarc.${ctx.domain}`;
  const publish = `publish \`${name}. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@${ctx.domain}"\``;
  // RFC 7489 §6.6.3: records that do not start with v=DMARC1 are discarded.
  const records = (await txt(ctx.resolve, name)).filter((r) => /^v\s*=\s*DMARC1\s*(;|$)/.test(r));
  if (records.length === 0) return fail('dmarc', `${name} has no v=DMARC1 record`, publish);
  if (records.length > 1) {
    // RFC 7489 §6.6.3: more than one record means no DMARC policy at all.
    return fail(
      'dmarc',
      `${name} has ${records.length} v=DMARC1 records, so receivers apply none`,
      'keep one record and delete the others',
    );
  }
  const record = records[0] ?? '';
  const policy = tags(record).get('p');
  // RFC 7489 §6.3: p is required and is none, quarantine or reject.
  if (!policy || !['none', 'quarantine', 'reject'].includes(policy.toLowerCase())) {
    return fail(
      'dmarc',
      `"${record}" has ${policy ? `p=${policy}, which is not none, quarantine or reject` : 'no p= tag'}`,
      publish,
    );
  }
  return pass('dmarc', `"${record}"`);
}
