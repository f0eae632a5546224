import { PostaError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { fetchStatus, type Status } from '../status/control.ts';
import { positionals, type Command } from './command.ts';
import { COMPLAINT_LIMIT, percent, WINDOW_DAYS } from '../events/complaint-rate.ts';
import { warmupLine } from '../warmup/schedule.ts';

export const status: Command = {
  name: 'status',
  help: `Usage: posta status [--json] [--dir DIR]

Asks the running \`posta serve\` of the config folder (through its control
socket, DATA/posta.sock) for its health: version, uptime, listeners, the
queue, deliveries and bounces in the last hour and day, the certificate's
expiry, the DKIM selectors that sign (and where a key rotation is), each
access key's use of its quota, each sending domain's complaint rate (a
warning past 0.3%), each warm-up (its day, today's limit per destination and
what was sent today) and the last errors. Exit 1 when no server answers.`,
  options: { json: { type: 'boolean' } },
  async run(args) {
    positionals(this, args, []);
    const config = await loadConfig(args.dir);
    const s = await fetchStatus(config.dataDir).catch((err: Error) => {
      throw new PostaError(`The running server could not give its status: ${err.message}.`);
    });
    if (!s) {
      throw new PostaError(
        `No posta server is running for ${config.dir} (nothing answers on ${config.dataDir}/posta.sock); start it with \`posta serve --dir ${config.dir}\`.`,
      );
    }
    process.stdout.write(args.values.json === true ? JSON.stringify(s, null, 2) + '\n' : text(s));
  },
};

function text(s: Status): string {
  const counts = (c: Record<string, number>) =>
    `${c.delivered ?? 0} delivered, ${c.transient ?? 0} deferred, ${(c.permanent ?? 0) + (c.expired ?? 0)} bounced`;
  const lines = [
    `posta ${s.version}, pid ${s.pid}, up ${duration(s.uptimeSeconds)} (since ${s.startedAt})`,
    'listeners',
    ...s.listeners.map((l) => `  ${l.kind.padEnd(12)} ${l.address}`),
    `queue        ${s.queue.messages} messages: ${s.queue.queued} recipients waiting, ${s.queue.deferred} deferred; oldest ${duration(s.queue.oldestSeconds)}`,
    `last hour    ${counts(s.lastHour)}`,
    `last day     ${counts(s.lastDay)}`,
    s.certificate.temporary
      ? `certificate  ${s.certificate.names.join(', ')}; temporary, self-signed until the CA issues one (clients that verify refuse it)`
      : `certificate  ${s.certificate.names.join(', ')}; expires ${s.certificate.notAfter} (${s.certificate.daysLeft} days)`,
    ...(s.certificate.failures > 0
      ? [
          `  renewal failing: ${s.certificate.failures} failed in a row, last: ${s.certificate.lastError ?? '?'}`,
        ]
      : []),
    'dkim',
    ...Object.entries(s.dkim).flatMap(([d, sel]) => [
      `  ${d.padEnd(12)} ${sel.join(', ')}`,
      // absent from a server older than this command, as complaints and warmup below
      ...(s.dkimRotation?.[d] ? [`  ${' '.repeat(12)} ${s.dkimRotation[d]}`] : []),
    ]),
    ...(s.keys.length
      ? [
          'keys',
          ...s.keys.map(
            (k) =>
              `  ${k.id}  ${k.sentLast24Hours} of ${k.daily} in 24 hours (${Math.round((100 * k.sentLast24Hours) / k.daily)}%), ${k.rate}/s  ${k.name}`,
          ),
        ]
      : []),
  ];
  const complaints = s.complaints ?? [];
  if (complaints.length) {
    lines.push(`complaints   last ${WINDOW_DAYS} days, per recipient delivered`);
    for (const c of complaints) {
      lines.push(
        `  ${c.domain.padEnd(12)} ${c.complaints} of ${c.delivered} (${percent(c.rate)})${c.over ? `  WARNING: at or past ${percent(COMPLAINT_LIMIT)}, where Gmail and Yahoo start refusing bulk mail; stop sending to people who did not ask for it` : ''}`,
      );
    }
  }
  // s.warmup: absent from a server older than this command
  const warmups = s.warmup ?? [];
  if (warmups.length) {
    lines.push('warm-up', ...warmups.map((w) => `  ${w.sender.padEnd(12)} ${warmupLine(w)}`));
  }
  if (s.errors.length) {
    lines.push('last errors', ...s.errors.slice(-5).map((e) => `  ${e.time}  ${e.msg}`));
  } else {
    lines.push('last errors  none');
  }
  return lines.join('\n') + '\n';
}

function duration(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}
