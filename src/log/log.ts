/**
 * The logger: pino, JSON lines to stdout (for journald), or readable lines
 * (pino-pretty) when stdout is a terminal; AUTH secrets redacted. Every line
 * carries the connection id (cid) or queue id (qid) of what it is about.
 * Message bodies are never logged. The last errors are kept in memory for
 * `posta status`.
 */
import { createRequire } from 'node:module';
import pino from 'pino';
import type PinoPretty from 'pino-pretty';

// pino-pretty is loaded only for a terminal: a service logging JSON never pays for it.
const require = createRequire(import.meta.url);

export type Logger = pino.Logger;

/** The most recent error lines, newest last. */
export class RecentErrors {
  readonly items: { time: string; msg: string }[] = [];
  add(msg: string): void {
    this.items.push({ time: new Date().toISOString(), msg });
    if (this.items.length > 20) this.items.shift();
  }
}

export function createLogger(
  opts: { level?: string; destination?: pino.DestinationStream; errors?: RecentErrors } = {},
): Logger {
  const errors = opts.errors;
  return pino(
    {
      level: opts.level ?? process.env.POSTA_LOG_LEVEL ?? 'info',
      base: undefined,
      redact: {
        paths: ['password', '*.password', 'pass', '*.pass', 'auth.password'],
        censor: '[redacted]',
      },
      hooks: {
        logMethod(args, method, level) {
          if (errors && level >= 50) {
            const [first, second] = args as unknown[];
            const err =
              typeof first === 'object' && first ? (first as { err?: unknown }).err : undefined;
            errors.add(
              [typeof second === 'string' ? second : String(first), err].filter(Boolean).join(': '),
            );
          }
          method.apply(this, args);
        },
      },
    },
    opts.destination ??
      (process.stdout.isTTY
        ? (require('pino-pretty') as typeof PinoPretty)({
            colorize: true,
            singleLine: true,
            translateTime: 'SYS:HH:MM:ss',
            ignore: 'pid,hostname',
            sync: true,
          })
        : pino.destination({ fd: 1, sync: false })),
  );
}
