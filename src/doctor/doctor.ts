/**
 * `posta doctor DOMAIN`: every check of one domain against the live DNS and
 * the server, run at once, in report order (see TITLES in report.ts). A check
 * that cannot finish (a DNS server that does not answer, say) becomes a
 * warning, "could not test", never a crash of the whole report; a broken
 * file it reads (a DKIM key) becomes a failure that names it.
 *
 * All I/O comes in: the resolver, the clock, the sending addresses, the
 * config (its folder holds the keys and aliases read). The one write is
 * --fix's edit of posta.toml (fix.ts).
 */
import type { ResolvedConfig } from '../config/load.ts';
import type { Endpoint } from '../config/endpoint.ts';
import type { ResolveFn } from '../dns/resolver.ts';
import { dkimDir } from '../config/paths.ts';
import { loadDomainKeys, type SwitchLog } from '../dkim/switches.ts';
import { acmePaths } from '../acme/manager.ts';
import type { SendingAddresses } from './addresses.ts';
import { PostaError } from '../errors.ts';
import { checkAddress, checkDnsbl, checkMx, checkPtr, type DnsContext } from './dns-checks.ts';
import { checkDkim, checkDmarc, checkHeloSpf, checkSpf } from './auth-checks.ts';
import { checkMtaSts, checkTlsRpt } from './policy-checks.ts';
import { checkCertificate } from './certificate.ts';
import { checkPostmaster } from './postmaster.ts';
import { checkListeners, checkOutbound25 } from './server-checks.ts';
import { writeIpFamily } from './fix.ts';
import { fail, report, warn, type CheckId, type CheckResult, type Report } from './report.ts';

export interface DoctorOptions {
  config: ResolvedConfig;
  /** A local domain, A-label form. */
  domain: string;
  resolve: ResolveFn;
  now: () => Date;
  /** What sendingAddresses() made of `addresses` and the network interfaces. */
  sending: SendingAddresses;
  /** DNSBL zones to look the sending addresses up in; none: no dnsbl check. */
  dnsbl: readonly string[];
  /** Where to test outbound port 25; default the first MX of gmail.com. */
  probe?: Endpoint;
  /** Apply the fixes that are safe to apply (only [delivery] ip_family). */
  fix: boolean;
  /** Connection timeout for listeners and the port-25 probe. */
  timeoutMs?: number;
  /** The server's record of DKIM rotation switches (null: unknown, none is assumed). */
  switches?: SwitchLog | null;
  /**
   * false: only the domain's own checks, none of the server's (certificate,
   * listeners, outbound port 25), which are the same for every domain.
   */
  server?: boolean;
}

/** A check that throws still gives its line: a failure for a broken file, else "could not test". */
async function guarded(id: CheckId, run: () => Promise<CheckResult>): Promise<CheckResult> {
  try {
    return await run();
  } catch (err) {
    const message = (err as Error).message;
    if (err instanceof PostaError) {
      return fail(id, message, 'do what the sentence above says, then run posta doctor again');
    }
    const dns = /^(query|getHostBy)/.test((err as { syscall?: string }).syscall ?? '');
    return warn(
      id,
      `could not test: ${message}`,
      dns
        ? 'check that the DNS servers in [dns] servers (or /etc/resolv.conf) answer, then run posta doctor again'
        : 'run posta doctor again; if this stays, report it with this line',
    );
  }
}

export async function runDoctor(o: DoctorOptions): Promise<Report> {
  const { config, domain } = o;
  const ctx: DnsContext = {
    domain,
    hostname: config.hostname,
    resolve: o.resolve,
    sending: o.sending,
    ipFamily: config.delivery.ipFamily,
  };
  const keyDir = dkimDir(config.dir, domain);
  const checks: Promise<CheckResult>[] = [
    guarded('mx', () => checkMx(ctx)),
    guarded('address', () => checkAddress(ctx)),
    guarded('ptr', () => ptrWithFix(ctx, o)),
    guarded('spf', () => checkSpf(ctx)),
    guarded('spf-helo', () => checkHeloSpf(ctx)),
    guarded('dkim', async () => {
      const d = await loadDomainKeys(config.dir, domain, o.switches ?? null);
      const rotation = d.plan && { plan: d.plan, switchedAt: d.switchedAt, now: o.now() };
      return checkDkim(ctx, d.keys, keyDir, rotation);
    }),
    guarded('dmarc', () => checkDmarc(ctx)),
    guarded('mta-sts', () => checkMtaSts(ctx, config.mtaSts)),
    guarded('tls-rpt', () => checkTlsRpt(ctx)),
    guarded('postmaster', () => checkPostmaster(config.dir, domain)),
  ];
  // the server's own checks, the same for every domain
  if (o.server !== false) checks.push(...serverChecks(o));
  if (o.dnsbl.length) checks.push(guarded('dnsbl', () => checkDnsbl(ctx, o.dnsbl)));
  return report(domain, await Promise.all(checks));
}

/** The certificate, the listeners and outbound port 25: the server's, not a domain's. */
function serverChecks(o: DoctorOptions): Promise<CheckResult>[] {
  const { config } = o;
  const certFile =
    config.tls?.cert ?? (config.acme && acmePaths(config.dataDir, config.acme.names).cert);
  return [
    guarded('certificate', () =>
      certFile
        ? checkCertificate({
            file: certFile,
            hostname: config.hostname,
            managedByAcme: config.acme !== null,
            now: o.now,
          })
        : Promise.resolve(
            fail(
              'certificate',
              `${config.file} has neither [tls] nor [acme]: posta has no certificate`,
              'add [acme] with your email to posta.toml to get one automatically, or set [tls] cert and key',
            ),
          ),
    ),
    guarded('listeners', () =>
      checkListeners({ listen: config.listen, hostname: config.hostname, timeoutMs: o.timeoutMs }),
    ),
    guarded('outbound-25', () =>
      checkOutbound25({
        resolve: o.resolve,
        probe: o.probe,
        relay: config.delivery.relay,
        ipFamily: config.delivery.ipFamily,
        timeoutMs: o.timeoutMs,
      }),
    ),
  ];
}

/** The ptr check, and with --fix the one remedy posta can apply itself. */
async function ptrWithFix(ctx: DnsContext, o: DoctorOptions): Promise<CheckResult> {
  const { suggestIpv4Only, ...result } = await checkPtr(ctx);
  if (!suggestIpv4Only || !o.fix) return result;
  try {
    await writeIpFamily(o.config.dir, 'ipv4-only');
  } catch (err) {
    return { ...result, detail: `${result.detail}; --fix failed: ${(err as Error).message}` };
  }
  return warn(
    'ptr',
    `${result.detail}; fixed: set [delivery] ip_family = "ipv4-only" in ${o.config.file}`,
    'restart posta serve to deliver over IPv4 only; set the IPv6 PTR later and remove the line',
  );
}
