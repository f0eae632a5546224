/**
 * Doctor checks on the TLS policy records senders read before delivering:
 *   mta-sts  _mta-sts.DOMAIN has one `v=STSv1; id=...` record (RFC 8461 §3.1)
 *            and the policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt
 *            (§3.3), fetched by mailauth as senders fetch it, with a
 *            certificate that must verify, names hostname as an MX (§4.1)
 *   tls-rpt  _smtp._tls.DOMAIN has one `v=TLSRPTv1; rua=...` record (RFC 8460 §3)
 */
import { getPolicy, validateMx } from 'mailauth/lib/mta-sts.js';
import type { DNSResolver } from 'mailauth';
import { stsPolicy, stsPolicyId, type StsMode } from '../mtasts/policy.ts';
import type { DnsContext } from './dns-checks.ts';
import { tags, txt } from './lookup.ts';
import { fail, pass, warn, type CheckResult } from './report.ts';

const FETCH_TIMEOUT_MS = 10_000;

export async function checkMtaSts(
  ctx: DnsContext,
  sts: { mode: StsMode; maxAge: number },
): Promise<CheckResult> {
  const name = `_mta-sts.${ctx.domain}`;
  const policyUrl = `https://mta-sts.${ctx.domain}/.well-known/mta-sts.txt`;
  // The id posta's own policy has: `posta dns` prints it.
  const ourId = stsPolicyId(stsPolicy({ mode: sts.mode, mx: ctx.hostname, maxAge: sts.maxAge }));
  const publish = `publish \`${name}. IN TXT "v=STSv1; id=${ourId}"\` (\`posta dns ${ctx.domain}\` prints it)`;
  // RFC 8461 §3.1: records that do not begin with v=STSv1 are discarded.
  const records = (await txt(ctx.resolve, name)).filter((r) => /^v=STSv1\s*(;|$)/.test(r));
  if (records.length === 0) return fail('mta-sts', `${name} has no v=STSv1 record`, publish);
  if (records.length > 1) {
    // RFC 8461 §3.1: with more than one record senders assume there is no policy.
    return fail(
      'mta-sts',
      `${name} has ${records.length} v=STSv1 records, so senders assume there is no policy`,
      `keep one record: ${publish}`,
    );
  }
  const id = tags(records[0] ?? '').get('id') ?? '';
  if (!/^[A-Za-z0-9]{1,32}$/.test(id)) {
    return fail(
      'mta-sts',
      `"${records[0]}" has ${id ? `id=${id}, which is not 1 to 32 letters and digits` : 'no id='}`,
      publish,
    );
  }
  const fetched = await getPolicy(ctx.domain, null, {
    resolver: ctx.resolve as DNSResolver,
    timeout: FETCH_TIMEOUT_MS,
  });
  const serve = `point mta-sts.${ctx.domain} at this server (CNAME ${ctx.hostname}.) and let posta serve https on port 443 with a certificate that covers mta-sts.${ctx.domain}`;
  if (fetched.status === 'errored' || fetched.policy.error) {
    const err: (Error & { code?: string }) | undefined = fetched.policy.error;
    // The server answered but its certificate did not verify: the fix is the certificate.
    const certificate = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ERR_TLS_CERT/.test(
      err?.code ?? '',
    );
    return fail(
      'mta-sts',
      `cannot fetch ${policyUrl}: ${err?.message ?? 'unknown error'}${err?.code ? ` (${err.code})` : ''}`,
      certificate
        ? `serve https for mta-sts.${ctx.domain} with a certificate from a public CA (the [acme] section gets one) that covers that name; senders verify it`
        : serve,
    );
  }
  if (fetched.status === 'not_found') {
    return fail('mta-sts', `mta-sts.${ctx.domain} has no address`, serve);
  }
  const policy = fetched.policy;
  const mxList = (policy.mx ?? []).join(', ') || 'none';
  // RFC 8461 §4.1: the MX host must match one of the policy's mx patterns.
  if (!validateMx(ctx.hostname, policy).valid) {
    return fail(
      'mta-sts',
      `the policy at ${policyUrl} allows mx ${mxList}, not ${ctx.hostname}: senders that enforce it refuse to deliver here`,
      `serve a policy with "mx: ${ctx.hostname}" (posta serves one when mta-sts.${ctx.domain} points at it)`,
    );
  }
  if (policy.mode === 'none') {
    return warn(
      'mta-sts',
      `the policy at ${policyUrl} has mode none: senders ignore it`,
      'set [mta_sts] mode = "testing" (or "enforce") in posta.toml and publish the id `posta dns` then prints',
    );
  }
  if (id !== ourId) {
    // RFC 8461 §3.1: senders refetch the policy only when the id changes.
    return warn(
      'mta-sts',
      `${name} has id=${id}, but posta's policy now has id ${ourId}: senders keep their cached copy of the old policy`,
      publish,
    );
  }
  return pass('mta-sts', `id=${id}; policy mode ${policy.mode}, mx ${mxList}`);
}

export async function checkTlsRpt(ctx: DnsContext): Promise<CheckResult> {
  const name = `_smtp._tls.${ctx.domain}`;
  const publish = `publish \`${name}. IN TXT "v=TLSRPTv1; rua=mailto:postmaster@${ctx.domain}"\``;
  // RFC 8460 §3: records not beginning with v=TLSRPTv1 are discarded; exactly one must remain.
  const records = (await txt(ctx.resolve, name)).filter((r) => /^v=TLSRPTv1\s*(;|$)/.test(r));
  if (records.length === 0) return fail('tls-rpt', `${name} has no v=TLSRPTv1 record`, publish);
  if (records.length > 1) {
    return fail(
      'tls-rpt',
      `${name} has ${records.length} v=TLSRPTv1 records, so senders send no reports`,
      'keep one record and delete the others',
    );
  }
  const record = records[0] ?? '';
  const rua = (tags(record).get('rua') ?? '').split(',').map((u) => u.trim());
  // RFC 8460 §3: rua is a list of mailto: or https: URIs.
  if (!rua.some((u) => /^(mailto:\S+@\S+|https:\/\/\S+)$/i.test(u))) {
    return fail('tls-rpt', `"${record}" has no mailto: or https: rua=`, publish);
  }
  return pass('tls-rpt', `"${record}"`);
}
