/**
 * `posta webhooks`: the endpoints of posta.toml's [webhooks.NAME] tables,
 * where each stands (its cursor in the events, failures, confirmation), the
 * log of its calls, and the secret that signs the "posta" format.
 */
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { openQueueDb, openQueueDbIfAny } from '../queue/spool.ts';
import { lastEventId } from '../events/events.ts';
import { webhookLog, webhookState } from '../events/webhooks.ts';
import { positionals, type Command } from './command.ts';

export const webhooks: Command = {
  name: 'webhooks',
  help: `Usage: posta webhooks list [--json]
       posta webhooks log [NAME] [--json]
       posta webhooks secret NAME

list    each [webhooks.NAME] of posta.toml: its URL, format, the events it
        still has to get, its failures and (SNS) whether it confirmed
log     the last 100 calls (of NAME, or of all): time, event, status, error
secret  the HMAC-SHA256 secret of NAME's Posta-Signature header ("posta"
        format): t=UNIX,v1=HEX, HEX = HMAC(secret, "UNIX.BODY")`,
  options: { json: { type: 'boolean' } },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const cmd = { ...this, name: `webhooks ${verb}` };
    const sub = { ...args, positionals: rest };
    const json = args.values.json === true;
    const config = await loadConfig(args.dir);
    const named = (name: string) => {
      const h = config.webhooks.find((w) => w.name === name);
      if (!h) {
        throw new PostaError(
          `posta.toml has no [webhooks.${name}]; \`posta webhooks list\` shows the webhooks.`,
        );
      }
      return h;
    };
    switch (verb) {
      case 'list': {
        positionals(cmd, sub, []);
        const db = openQueueDbIfAny(config.dataDir);
        try {
          const newest = lastEventId(db);
          const rows = config.webhooks.map((h) => {
            const st = db.prepare('SELECT * FROM webhook_state WHERE endpoint = ?').get(h.name) as
              { last_event: number; failures: number; confirmed: number } | undefined;
            const owed = st
              ? (
                  db
                    .prepare('SELECT count(*) AS n FROM events WHERE id > ?')
                    .get(st.last_event) as {
                    n: number;
                  }
                ).n
              : 0;
            return {
              name: h.name,
              url: h.url,
              format: h.format,
              events: h.events,
              domains: h.domains,
              keys: h.keys,
              started: st !== undefined,
              owed,
              failures: st?.failures ?? 0,
              ...(h.format === 'sns' ? { confirmed: st?.confirmed === 1 } : {}),
            };
          });
          if (json)
            process.stdout.write(
              JSON.stringify({ newest_event: newest, webhooks: rows }, null, 2) + '\n',
            );
          else if (rows.length === 0)
            process.stdout.write('No webhooks: add a [webhooks.NAME] table to posta.toml.\n');
          else
            for (const r of rows) {
              process.stdout.write(
                `${r.name}  ${r.format}  ${r.url}\n  ${r.started ? `${r.owed} event(s) to look at, ${r.failures} failure(s) in a row` : 'not started yet (the server has not run with it)'}${r.confirmed === false ? '; subscription not confirmed' : ''}\n`,
              );
            }
        } finally {
          db.close();
        }
        return;
      }
      case 'log': {
        const [name] = positionals(cmd, sub, [], true);
        if (name !== undefined) named(name);
        const db = openQueueDbIfAny(config.dataDir);
        try {
          const log = webhookLog(db, name);
          if (json) {
            process.stdout.write(
              JSON.stringify(
                log.map((l) => ({ ...l, at: new Date(l.at).toISOString() })),
                null,
                2,
              ) + '\n',
            );
          } else if (log.length === 0) {
            process.stdout.write('No calls yet.\n');
          } else {
            for (const l of log) {
              process.stdout.write(
                `${new Date(l.at).toISOString()}  ${l.endpoint}  ${l.event === null ? 'confirmation' : `event ${l.event}`}  ${l.status ?? '-'}  ${l.ms} ms${l.error ? `  ${l.error}` : ''}\n`,
              );
            }
          }
        } finally {
          db.close();
        }
        return;
      }
      case 'secret': {
        const [name = ''] = positionals(cmd, sub, ['NAME']);
        named(name);
        const db = openQueueDb(config.dataDir);
        try {
          process.stdout.write(`${webhookState(db, name).secret}\n`);
        } finally {
          db.close();
        }
        return;
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not a webhooks command` : 'A webhooks command is missing'}; use list, log or secret.`,
        );
    }
  },
};
