/**
 * The logger: pino, JSON lines to stdout (for journald), with AUTH secrets
 * redacted. Every line carries the connection id (cid) or queue id (qid) of
 * what it is about. Message bodies are never logged.
 */
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(
  opts: { level?: string; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      level: opts.level ?? process.env.POSTA_LOG_LEVEL ?? 'info',
      base: undefined,
      redact: {
        paths: ['password', '*.password', 'pass', '*.pass', 'auth.password'],
        censor: '[redacted]',
      },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}
