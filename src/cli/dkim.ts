import { PostaError, UsageError } from '../errors.ts';
import { loadConfig, type ResolvedConfig } from '../config/load.ts';
import { createResolver } from '../dns/resolver.ts';
import { DEFAULT_GRACE_DAYS } from '../dkim/rotation.ts';
import {
  finishRotation,
  rotationStatus,
  startRotation,
  type RotationStatus,
} from '../dkim/rotate.ts';
import { SwitchLog } from '../dkim/switches.ts';
import { openQueueDbIfAny } from '../queue/spool.ts';
import { queuedFromBefore } from '../queue/inspect.ts';
import { dkimRecord, zoneLine } from '../dnsrecords/records.ts';
import { positionals, str, type Command } from './command.ts';
import { domainArg } from './init.ts';

export const dkim: Command = {
  name: 'dkim',
  help: `Usage: posta dkim rotate DOMAIN [--after DATE] [--grace DAYS] [--dir DIR]
       posta dkim rotate DOMAIN --finish [--dir DIR]
       posta dkim status [DOMAIN] [--json] [--dir DIR]

rotate    makes a new RSA-2048 and a new Ed25519 key for DOMAIN (new date
          selectors) and prints their DNS records. The running server keeps
          signing with the old keys until it sees both new records published
          with the right keys ([dkim] rotation_check, default every 10
          minutes, and at start), then signs with the new ones. The old
          records must stay published for the grace period after that.
  --after DATE   do not switch before DATE (2026-12-15 or 2026-12-15T08:00:00Z),
                 even once the records are visible
  --grace DAYS   how long the old records stay needed after the switch
                 (default ${DEFAULT_GRACE_DAYS}; at least [delivery] lifetime)
  --finish       once the grace is over: delete the old key files and the
                 plan (domains/DOMAIN/dkim/rotation), and print the records
                 that may now be removed from DNS
status    each key's state (active, pending, retiring, retired), whether a
          pending key's record is published, and when old records may go.

The plan is the file domains/DOMAIN/dkim/rotation in the config folder (commit
it with the keys); the server records the switch in DATA/dkim-switches.json.`,
  options: {
    after: { type: 'string' },
    grace: { type: 'string' },
    finish: { type: 'boolean' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const sub = { ...args, positionals: rest };
    const cmd = { ...this, name: `dkim ${verb}` };
    switch (verb) {
      case 'rotate': {
        const [domainText = ''] = positionals(cmd, sub, ['DOMAIN']);
        const config = await loadConfig(args.dir);
        const domain = domainArg(domainText);
        if (args.values.finish === true) {
          if (str(args, 'after') !== undefined || str(args, 'grace') !== undefined) {
            throw new UsageError('--finish takes neither --after nor --grace.');
          }
          return finish(config, domain);
        }
        return rotate(config, domain, dateArg(str(args, 'after')), graceArg(str(args, 'grace')));
      }
      case 'status': {
        const [domainText] = positionals(cmd, sub, [], true);
        if (rest.length > 1)
          throw new UsageError(`unexpected argument "${rest[1]}"; see \`posta dkim --help\`.`);
        const config = await loadConfig(args.dir);
        const domains = domainText === undefined ? config.domains : [domainArg(domainText)];
        const resolver = createResolver(config.dns.servers);
        const switches = await SwitchLog.open(config.dataDir).catch(() => null);
        const list: RotationStatus[] = [];
        for (const domain of domains) {
          list.push(
            await rotationStatus({
              configDir: config.dir,
              domain,
              switches,
              resolve: resolver.resolve,
              now: new Date(),
            }),
          );
        }
        process.stdout.write(
          args.values.json === true
            ? `${JSON.stringify(list, null, 2)}\n`
            : list.map(statusText).join('\n'),
        );
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not a dkim command` : 'A dkim command is missing'}; use rotate or status.`,
        );
    }
  },
};

function dateArg(text: string | undefined): Date | null {
  if (text === undefined) return null;
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(d.getTime())) {
    throw new UsageError(
      `--after ${text} is not a date; write 2026-12-15 or 2026-12-15T08:00:00Z.`,
    );
  }
  return d;
}

function graceArg(text: string | undefined): number {
  if (text === undefined) return DEFAULT_GRACE_DAYS;
  if (!/^\d{1,3}$/.test(text) || Number(text) > 365) {
    throw new UsageError(`--grace ${text} is not a number of days from 0 to 365.`);
  }
  return Number(text);
}

async function rotate(
  config: ResolvedConfig,
  domain: string,
  after: Date | null,
  graceDays: number,
) {
  const { plan, keys } = await startRotation({
    configDir: config.dir,
    domain,
    now: new Date(),
    after,
    graceDays,
    lifetimeMs: config.delivery.lifetimeMs,
  });
  const minutes = Math.max(1, Math.round(config.dkim.rotationCheckMs / 60_000));
  const out = [
    `Started a DKIM key rotation of ${domain}: new keys ${keys.map((k) => k.selector).join(' and ')}.`,
    `posta keeps signing with ${plan.oldSelectors.join(', ')} until both new records below are published${after ? ` and ${after.toISOString()} is past` : ''}.`,
    '',
    `; DNS records to add for ${domain} (keep the old DKIM records).`,
    ...keys.flatMap((k) => {
      const r = dkimRecord(domain, k);
      return [`; ${r.about}`, zoneLine(r)];
    }),
    '',
    'Next:',
    '  1. Publish the records above at your DNS provider; leave the old ones as they are.',
    `  2. posta serve checks every ${minutes} minute${minutes === 1 ? '' : 's'} and switches to the new keys once it sees both;`,
    `     \`posta dkim status ${domain} --dir ${config.dir}\` shows what it sees.`,
    `  3. Keep the old records ${graceDays} days after the switch; then \`posta dkim rotate ${domain} --finish\``,
    '     deletes the old keys and says which records to remove.',
    `  4. Commit the config folder: git add domains/${domain}/dkim && git commit`,
    '',
  ];
  process.stdout.write(out.join('\n'));
}

async function finish(config: ResolvedConfig, domain: string) {
  const switches = await SwitchLog.open(config.dataDir).catch((err: Error) => {
    throw new PostaError(
      `${err.message.replace(/\.$/, '')}; run this as the server's user (or root), which can read the data folder.`,
    );
  });
  const db = openQueueDbIfAny(config.dataDir);
  const { plan, removed } = await finishRotation({
    configDir: config.dir,
    domain,
    switches,
    now: new Date(),
    queuedBefore: (d, at) => queuedFromBefore(db, d, at.getTime()),
  }).finally(() => db.close());
  const out = [
    `Finished the DKIM key rotation of ${domain}: ${plan.newSelectors.join(', ')} sign; deleted ${removed.map((k) => k.file).join(', ') || 'no old key file (already gone)'}.`,
    '',
    '; These records may now be removed from DNS:',
    ...plan.oldSelectors.map((s) => `; ${s}._domainkey.${domain}. TXT`),
    '',
    `Commit the config folder: git add -A domains/${domain}/dkim && git commit`,
    '',
  ];
  process.stdout.write(out.join('\n'));
}

function statusText(s: RotationStatus): string {
  const lines = [`${s.domain}: ${s.summary}`];
  for (const k of s.keys) {
    const what =
      k.state === 'pending'
        ? k.record === null
          ? 'pending, record published'
          : `pending: ${k.record}`
        : k.state === 'retiring'
          ? `retiring: keep its record until ${s.removableAt?.toISOString()}`
          : k.state === 'retired'
            ? 'retired: its record may be removed'
            : k.state === 'missing'
              ? 'missing: the plan names it, but there is no key file'
              : 'active, signing';
    lines.push(`  ${k.selector.padEnd(14)} ${k.algorithm.padEnd(8)} ${what}`);
  }
  return `${lines.join('\n')}\n`;
}
