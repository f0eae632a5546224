/**
 * `posta events`: what happened to the mail of posta's senders
 * (events/events.ts): Send, Delivery, DeliveryDelay and Bounce, per
 * recipient, oldest first; kept 30 days, as the delivery log.
 */
import { loadConfig } from '../config/load.ts';
import { openQueueDbIfAny } from '../queue/spool.ts';
import { listEvents, type StoredEvent } from '../events/events.ts';
import { sesEvent } from '../events/ses-json.ts';
import { positionals, str, type Command } from './command.ts';
import { UsageError } from '../errors.ts';

export const events: Command = {
  name: 'events',
  help: `Usage: posta events [--message ID] [--limit N] [--json]

Every event of the mail posta's accounts, keys and local users sent, oldest
first: Send, Delivery, DeliveryDelay and Bounce (with SES's bounce types). With
--message, the events of one message (its queue id, which the SES APIs return
as MessageId). --json prints SES's event JSON (eventType, mail, and the event's
own object), one per line.`,
  options: {
    message: { type: 'string' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    positionals(this, args, []);
    const limitText = str(args, 'limit') ?? '1000';
    if (!/^[1-9]\d{0,6}$/.test(limitText)) {
      throw new UsageError(`--limit must be a whole number above 0, not "${limitText}".`);
    }
    const config = await loadConfig(args.dir);
    const db = openQueueDbIfAny(config.dataDir);
    try {
      const message = str(args, 'message');
      const list = listEvents(db, { message, limit: Number(limitText) });
      for (const e of list) {
        if (args.values.json === true) {
          process.stdout.write(JSON.stringify(sesEvent(db, e)) + '\n');
        } else {
          process.stdout.write(line(e));
        }
      }
      if (list.length === 0 && args.values.json !== true) {
        process.stdout.write(message ? `No events for ${message}.\n` : 'No events yet.\n');
      }
    } finally {
      db.close();
    }
  },
};

function line(e: StoredEvent): string {
  const d = e.detail;
  const what =
    e.type === 'Bounce'
      ? ` ${String(d.bounceType)}/${String(d.bounceSubType)}`
      : e.type === 'DeliveryDelay'
        ? ` ${String(d.delayType)}`
        : '';
  return `${new Date(e.at).toISOString()}  ${e.message}  ${e.type}${what}  ${e.recipients.join(', ')}\n`;
}
