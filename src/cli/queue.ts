import { PostaError, UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { WARMUP_HOLD } from '../warmup/warmup.ts';
import { openQueueView } from '../store/open.ts';
import type { MessageDetail, QueueEntry } from '../queue/inspect.ts';
import { positionals, type Command } from './command.ts';

export const queue: Command = {
  name: 'queue',
  help: `Usage: posta queue list [--json]
       posta queue show ID [--json]
       posta queue flush
       posta queue delete ID
       posta queue hold ID
       posta queue release ID

list    every queued message: id, age, sender, and each recipient still to
        deliver with its attempts, next attempt and the last reply
show    one message, with the history of every delivery attempt (kept 30 days,
        also after the message has left the queue)
flush   retry every waiting recipient now
delete  remove a message from the queue without delivering or bouncing it
hold    try none of a message's recipients until it is released
release try a held message's recipients now

These work beside a running \`posta serve\`; a flush takes effect within a second.
With [storage] url they act on the queue in PostgreSQL: every node's.`,
  options: { json: { type: 'boolean' } },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const cmd = { ...this, name: `queue ${verb}` };
    const sub = { ...args, positionals: rest };
    const json = args.values.json === true;
    const config = await loadConfig(args.dir);
    const queue = await openQueueView(config.storage, config.dataDir);
    const view = queue.view;
    try {
      switch (verb) {
        case 'list': {
          positionals(cmd, sub, []);
          const entries = await view.entries();
          process.stdout.write(
            json ? JSON.stringify(entries.map(entryJson), null, 2) + '\n' : listText(entries),
          );
          return;
        }
        case 'show': {
          const [id = ''] = positionals(cmd, sub, ['ID']);
          const detail = await view.detail(id);
          if (!detail)
            throw new PostaError(
              `There is no message ${id} in the queue or its log; \`posta queue list\` shows the queue.`,
            );
          process.stdout.write(
            json ? JSON.stringify(detailJson(detail), null, 2) + '\n' : showText(detail),
          );
          return;
        }
        case 'flush': {
          positionals(cmd, sub, []);
          const n = await view.flush();
          process.stdout.write(
            `${n} waiting recipient${n === 1 ? '' : 's'} will be retried now.\n`,
          );
          return;
        }
        case 'delete': {
          const [id = ''] = positionals(cmd, sub, ['ID']);
          if (!(await view.remove(id)))
            throw new PostaError(
              `There is no message ${id} in the queue; \`posta queue list\` shows the queue.`,
            );
          process.stdout.write(`Deleted ${id}.\n`);
          return;
        }
        case 'hold':
        case 'release': {
          const [id = ''] = positionals(cmd, sub, ['ID']);
          const n = verb === 'hold' ? await view.hold(id) : await view.release(id);
          if (n === 0)
            throw new PostaError(
              `There is no ${verb === 'hold' ? 'waiting' : 'held'} recipient of ${id} in the queue; \`posta queue show ${id}\` shows it.`,
            );
          process.stdout.write(
            verb === 'hold'
              ? `Held ${id} (${n} recipient${n === 1 ? '' : 's'}); \`posta queue release ${id}\` lets it go.\n`
              : `Released ${id}: ${n} recipient${n === 1 ? '' : 's'} will be tried now.\n`,
          );
          return;
        }
        default:
          throw new UsageError(
            `${verb ? `"${verb}" is not a queue command` : 'A queue command is missing'}; use list, show, flush, delete, hold or release.`,
          );
      }
    } finally {
      await queue.close();
    }
  },
};

const iso = (t: number) => new Date(t).toISOString();

function entryJson(e: QueueEntry) {
  return {
    id: e.id,
    created: iso(e.createdAt),
    sender: e.sender,
    source: e.source,
    account: e.account ?? null,
    apiKey: e.apiKey ?? null,
    messageId: e.messageId ?? null,
    size: e.size,
    recipients: e.recipients.map((r) => ({
      address: r.address,
      state: r.held ? 'held' : r.attempts === 0 ? 'queued' : 'deferred',
      attempts: r.attempts,
      nextAttempt: iso(r.nextAttempt),
      lastReply: r.lastReply,
    })),
  };
}

function detailJson(d: MessageDetail) {
  return {
    id: d.id,
    queued: d.queued ? entryJson(d.queued) : null,
    subject: d.subject,
    from: d.from,
    attempts: d.attempts.map((a) => ({ ...a, at: iso(a.at) })),
  };
}

function listText(entries: QueueEntry[]): string {
  if (entries.length === 0) return 'The queue is empty.\n';
  const now = Date.now();
  const lines: string[] = [];
  for (const e of entries) {
    lines.push(`${e.id}  ${age(now - e.createdAt)} old  ${e.size} bytes  from <${e.sender}>`);
    for (const r of e.recipients) lines.push(`    ${recipientText(r, now)}`);
  }
  const n = entries.reduce((sum, e) => sum + e.recipients.length, 0);
  lines.push(
    '',
    `${entries.length} message${entries.length === 1 ? '' : 's'}, ${n} recipient${n === 1 ? '' : 's'} to deliver.`,
  );
  return lines.join('\n') + '\n';
}

function recipientText(r: QueueEntry['recipients'][number], now: number): string {
  const when = r.nextAttempt <= now ? 'now' : `in ${age(r.nextAttempt - now)}`;
  const state =
    r.attempts === 0 ? 'queued' : `deferred, ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}`;
  // a wait for warm-up is no reply of a server (warmup/warmup.ts)
  const label = r.lastReply?.startsWith(WARMUP_HOLD) ? 'waiting for' : 'last reply:';
  const reply = r.lastReply ? `\n        ${label} ${r.lastReply}` : '';
  if (r.held) return `<${r.address}>  held (${state})${reply}`;
  return `<${r.address}>  ${state}, next ${when}${reply}`;
}

function showText(d: MessageDetail): string {
  const now = Date.now();
  const lines = [`Message ${d.id}`];
  if (d.queued) {
    lines.push(
      `  from      <${d.queued.sender}> (${d.queued.source}${d.queued.account ? ` by ${d.queued.account}` : ''}, ${d.queued.clientIp})`,
    );
    if (d.from.length) lines.push(`  From:     ${d.from.join(', ')}`);
    if (d.subject) lines.push(`  Subject:  ${d.subject}`);
    if (d.queued.messageId) lines.push(`  Message-ID: ${d.queued.messageId}`);
    lines.push(`  queued    ${iso(d.queued.createdAt)}, ${d.queued.size} bytes`);
    lines.push('  waiting:');
    for (const r of d.queued.recipients) lines.push(`    ${recipientText(r, now)}`);
  } else {
    lines.push('  no longer in the queue');
  }
  lines.push('  attempts:');
  if (d.attempts.length === 0) lines.push('    none yet');
  for (const a of d.attempts) {
    const where = a.mx ? ` via ${a.mx}${a.ip ? ` [${a.ip}]` : ''}` : '';
    const tls = a.tls
      ? ` ${a.tls}${a.tlsVerified ? ' verified' : ' unverified'}`
      : a.ip
        ? ' plaintext'
        : '';
    lines.push(
      `    ${iso(a.at)}  <${a.recipient}>  ${a.outcome}${where}${tls} (${a.durationMs} ms)`,
    );
    lines.push(`        ${a.reply}`);
  }
  return lines.join('\n') + '\n';
}

function age(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
