/**
 * `posta key`: access keys for the SES APIs, the Resend API and SMTP AUTH
 * (keys/keys.ts). The secret (and the Resend API key made from it) is
 * printed once, at creation; posta keeps it in the data folder's queue.db,
 * which is backed up with the data folder.
 */
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { requireDomain } from '../config/paths.ts';
import { openQueueDb, openQueueDbIfAny } from '../queue/spool.ts';
import { DEFAULT_DAILY, DEFAULT_RATE, KeyStore, resendToken, type ApiKey } from '../keys/keys.ts';
import { sentLast24Hours } from '../keys/usage.ts';
import { positionals, str, type Command } from './command.ts';
import { domainArg } from './init.ts';

function count(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^[1-9]\d{0,9}$/.test(text)) {
    throw new UsageError(`${flag} must be a whole number of messages above 0, not "${text}".`);
  }
  return Number(text);
}

export const key: Command = {
  name: 'key',
  help: `Usage: posta key create --domain DOMAIN [--domain DOMAIN...] [--name NAME]
                         [--rate N] [--daily N] [--json]
       posta key list [--json]
       posta key revoke ID

create  a new access key that may send from the given domains; prints its id
        and secret once. Use them as an AWS access key id and secret access key
        (the SES v2 and v1 APIs on the http and https listeners) or as the user
        name and password of SMTP AUTH on 587/465. The Resend API key printed
        with them (re_ID_SECRET) is the same key for the Resend API: give it to
        a Resend SDK with its base URL at the http or https listener.
        --rate   recipients per second (default ${DEFAULT_RATE})
        --daily  recipients per 24 hours (default ${DEFAULT_DAILY})
list    every key, with its domains, limits and use in the last 24 hours
revoke  the key stops working at once, on every path

Keys live in the data folder (queue.db): back it up with the data folder.`,
  options: {
    domain: { type: 'string', multiple: true },
    name: { type: 'string' },
    rate: { type: 'string' },
    daily: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const cmd = { ...this, name: `key ${verb}` };
    const sub = { ...args, positionals: rest };
    const json = args.values.json === true;
    const config = await loadConfig(args.dir);
    switch (verb) {
      case 'create': {
        positionals(cmd, sub, []);
        const given = (args.values.domain ?? []) as string[];
        if (given.length === 0) {
          throw new UsageError('--domain is missing: name the domain(s) the key may send from.');
        }
        const domains = [...new Set(given.map(domainArg))];
        for (const d of domains) await requireDomain(args.dir, d);
        const rate = count(str(args, 'rate'), '--rate', DEFAULT_RATE);
        const daily = count(str(args, 'daily'), '--daily', DEFAULT_DAILY);
        const db = openQueueDb(config.dataDir);
        try {
          const made = new KeyStore(db).create({
            name: str(args, 'name') ?? domains.join(' '),
            domains,
            rate,
            daily,
          });
          process.stdout.write(
            json
              ? JSON.stringify({
                  access_key_id: made.key.id,
                  secret_access_key: made.secret,
                  resend_api_key: resendToken(made.key.id, made.secret),
                  ...keyJson(made.key, 0),
                }) + '\n'
              : `Access key id:     ${made.key.id}\nSecret access key: ${made.secret}\n` +
                  `Resend API key:    ${resendToken(made.key.id, made.secret)}\n` +
                  `Domains: ${domains.join(', ')}; ${rate} per second, ${daily} per 24 hours.\n` +
                  "The secret is shown only now: keep it in your application's secret store.\n",
          );
        } finally {
          db.close();
        }
        return;
      }
      case 'list': {
        positionals(cmd, sub, []);
        const db = openQueueDbIfAny(config.dataDir);
        try {
          const keys = new KeyStore(db).list().map((k) => keyJson(k, sentLast24Hours(db, k.id)));
          process.stdout.write(json ? JSON.stringify(keys, null, 2) + '\n' : listText(keys));
        } finally {
          db.close();
        }
        return;
      }
      case 'revoke': {
        const [id = ''] = positionals(cmd, sub, ['ID']);
        const db = openQueueDb(config.dataDir);
        try {
          if (!new KeyStore(db).revoke(id)) {
            throw new PostaError(
              `There is no key ${id} in use; \`posta key list\` shows the keys.`,
            );
          }
        } finally {
          db.close();
        }
        process.stdout.write(`Revoked ${id}.\n`);
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not a key command` : 'A key command is missing'}; use create, list or revoke.`,
        );
    }
  },
};

function keyJson(k: ApiKey, sent: number) {
  return {
    id: k.id,
    name: k.name,
    domains: k.domains,
    rate: k.rate,
    daily: k.daily,
    sent_last_24_hours: sent,
    created_at: new Date(k.createdAt).toISOString(),
    revoked_at: k.revokedAt === null ? null : new Date(k.revokedAt).toISOString(),
  };
}

function listText(keys: ReturnType<typeof keyJson>[]): string {
  if (keys.length === 0) return 'No keys; make one with `posta key create --domain DOMAIN`.\n';
  return keys
    .map(
      (k) =>
        `${k.id}  ${k.name}\n  domains: ${k.domains.join(', ')}\n` +
        (k.revoked_at
          ? `  revoked ${k.revoked_at}\n`
          : `  ${k.rate}/s, ${k.daily}/24h, sent ${k.sent_last_24_hours} in the last 24 hours\n`),
    )
    .join('');
}
