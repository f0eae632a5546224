import { networkInterfaces } from 'node:os';
import { UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { requireDomain } from '../config/paths.ts';
import { parseEndpoint, parseHostPort, type Endpoint } from '../config/endpoint.ts';
import { parseDomain } from '../address/address.ts';
import { createResolver } from '../dns/resolver.ts';
import { runDoctor } from '../doctor/doctor.ts';
import { SwitchLog } from '../dkim/switches.ts';
import { sendingAddresses, type SendingAddresses } from '../doctor/addresses.ts';
import { formatText } from '../doctor/report.ts';
import { positionals, str, type Command } from './command.ts';
import { domainArg } from './init.ts';

export const doctor: Command = {
  name: 'doctor',
  help: `Usage: posta doctor DOMAIN [--json] [--fix] [--dnsbl ZONE,...] [--probe HOST:PORT] [--dir DIR]

Checks DOMAIN's live DNS (through [dns] servers, else the system resolver) and
the server, and prints one line per check: ✓ passed, ✗ failed, ! a warning or
could not test, with a fix for each ✗ and !. Exits 1 when a check failed.

  mx           the domain's MX is hostname
  address      hostname's A/AAAA are the sending addresses (\`addresses\` in
               posta.toml, else those of the network interfaces)
  ptr          each sending address has PTR = hostname, resolving back to it
  spf          one valid v=spf1 record, at most 10 lookups, authorising them
  dkim         every key on disk is published under SELECTOR._domainkey
  dmarc        one v=DMARC1 record with p=
  mta-sts      _mta-sts TXT, and the policy at https://mta-sts.DOMAIN/ names hostname
  tls-rpt      one v=TLSRPTv1 record with rua=
  postmaster   postmaster@DOMAIN and abuse@DOMAIN forward somewhere (an alias
               or the catch-all), so the reports and complaints arrive
  certificate  covers hostname, more than 14 days left, complete chain
  listeners    every smtp/submission/submissions endpoint greets with 220
  outbound-25  port 25 out of this machine is open (--probe, else gmail.com's MX)
  dnsbl        with --dnsbl: no sending address is listed

  --json              print {domain, checks: [{id, status, title, detail, fix}], ok}
  --fix               apply what posta can fix itself: [delivery] ip_family =
                      "ipv4-only" in posta.toml when IPv6 lacks reverse DNS
  --dnsbl ZONE,...    blocklists to look the sending addresses up in
  --probe HOST:PORT   where to test outbound SMTP instead of gmail.com's MX`,
  options: {
    json: { type: 'boolean' },
    fix: { type: 'boolean' },
    dnsbl: { type: 'string', multiple: true },
    probe: { type: 'string' },
  },
  async run(args) {
    const [domainText = ''] = positionals(this, args, ['DOMAIN']);
    const domain = domainArg(domainText);
    const dnsbl = dnsblZones((args.values.dnsbl as string[] | undefined) ?? []);
    const probeText = str(args, 'probe');
    const probe = probeText === undefined ? undefined : probeArg(probeText);
    const config = await loadConfig(args.dir);
    await requireDomain(config.dir, domain);
    const resolver = createResolver(config.dns.servers);
    const sending = sendingAddresses(config.addresses, networkInterfaces());
    const result = await runDoctor({
      config,
      domain,
      resolve: resolver.resolve,
      now: () => new Date(),
      sending,
      dnsbl,
      probe,
      fix: args.values.fix === true,
      // unreadable (another user's data folder): rotations are taken as not switched
      switches: await SwitchLog.open(config.dataDir).catch(() => null),
    });
    process.stdout.write(
      args.values.json === true
        ? `${JSON.stringify(result, null, 2)}\n`
        : formatText(result, heading(domain, config.hostname, sending)),
    );
    return result.ok ? 0 : 1;
  },
};

function heading(domain: string, hostname: string, s: SendingAddresses): string {
  const from = s.addresses.length
    ? `sending from ${s.addresses.join(', ')}${s.source === 'interfaces' ? ' (found on the network interfaces)' : ''}`
    : 'sending addresses unknown';
  return `posta doctor ${domain}: hostname ${hostname}, ${from}`;
}

function dnsblZones(values: string[]): string[] {
  const zones = values.flatMap((v) => v.split(',')).map((z) => z.trim());
  return zones.filter(Boolean).map((z) => {
    const d = parseDomain(z);
    if (!d.ok) throw new UsageError(`--dnsbl ${z} is not a DNS zone like zen.spamhaus.org.`);
    return d.value;
  });
}

function probeArg(text: string): Endpoint {
  const e = parseEndpoint(text) ?? parseHostPort(text);
  if (!e || e.port === 0) {
    throw new UsageError(
      `--probe ${text} is not HOST:PORT; write "mx.example.net:25", "192.0.2.1:25" or "[2001:db8::1]:25".`,
    );
  }
  return e;
}
