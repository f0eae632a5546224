/**
 * The domains page's "Check DNS": the records to publish, as `posta dns`
 * prints them, beside what `posta doctor` finds in live DNS and the server.
 * The same functions as those commands, run on demand.
 */
import { networkInterfaces } from 'node:os';
import type { ResolvedConfig } from '../../config/load.ts';
import { dkimDir } from '../../config/paths.ts';
import type { ResolveFn } from '../../dns/resolver.ts';
import { loadKeys } from '../../dkim/keys.ts';
import { SwitchLog } from '../../dkim/switches.ts';
import { formatZone } from '../../dnsrecords/records.ts';
import { runDoctor } from '../../doctor/doctor.ts';
import { sendingAddresses } from '../../doctor/addresses.ts';
import type { Report } from '../../doctor/report.ts';

/** `server`: false leaves out doctor's checks of the server (doctor.ts), the same for every domain. */
export async function checkDomain(
  config: ResolvedConfig,
  resolve: ResolveFn,
  domain: string,
  opts: { server?: boolean } = {},
): Promise<{ zone: string; report: Report }> {
  const keys = await loadKeys(dkimDir(config.dir, domain));
  const zone = formatZone({
    domain,
    hostname: config.hostname,
    addresses: config.addresses,
    keys,
    mtaSts: config.mtaSts,
  });
  const report = await runDoctor({
    config,
    domain,
    resolve,
    now: () => new Date(),
    sending: sendingAddresses(config.addresses, networkInterfaces()),
    dnsbl: [],
    fix: false,
    switches: await SwitchLog.open(config.dataDir).catch(() => null),
    server: opts.server,
  });
  return { zone, report };
}
