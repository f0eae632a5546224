import { loadConfig } from '../config/load.ts';
import { formatEndpoint } from '../config/endpoint.ts';
import { RecentErrors, createLogger, type Logger } from '../log/log.ts';
import { startApp, type App } from '../app.ts';
import { positionals, type Command } from './command.ts';

export const serve: Command = {
  name: 'serve',
  asRoot: true,
  help: `Usage: posta serve [--dir DIR]

Runs posta in the foreground with the config folder DIR: the listeners of
[listen], the delivery workers, and the certificate of [tls] (reloaded when the
files change) or of [acme] (obtained and renewed). Logs are JSON lines on
stdout; a "ready" line follows the "listening" lines. A listener that cannot
be had stops it at once (exit 1). SIGTERM or SIGINT stops it within seconds:
connections in progress get 2 seconds to finish, then are closed; deliveries
still under way after 1.5 seconds stay queued for the next start.`,
  async run(args) {
    positionals(this, args, []);
    const config = await loadConfig(args.dir);
    const errors = new RecentErrors();
    const log = createLogger({ errors });
    const app = await startApp(config, { log, errors }).catch((err: unknown) => {
      exitSoon(log);
      throw err;
    });
    announce(app, log);
    const code = await untilSignal(app, log);
    exitSoon(log);
    return code;
  },
};

export function announce(app: App, log: Logger): void {
  for (const l of app.listeners) {
    log.info(
      { kind: l.kind, address: formatEndpoint({ host: l.endpoint.host, port: l.port }) },
      'listening',
    );
  }
  log.info({ pid: process.pid }, 'ready');
}

/** The most a stop may take; what is still running then is cut off. */
const STOP_LIMIT_MS = 4000;

/** Resolves, with the exit code, once a signal has stopped the app. */
export function untilSignal(app: App, log: Logger): Promise<number> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      const limit = setTimeout(() => {
        log.error(`not stopped within ${STOP_LIMIT_MS / 1000} s; exiting anyway`);
        resolve(1);
      }, STOP_LIMIT_MS);
      void app
        .stop()
        .then(
          () => 0,
          (err: Error) => {
            log.error({ err: err.message }, 'stop failed');
            return 1;
          },
        )
        .then((code) => {
          clearTimeout(limit);
          resolve(code);
        });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

/**
 * Exit once the last log lines are out, even when something still holds the
 * event loop (acme-client's own retry timers, a socket closing slowly):
 * after a failed start or a stop, nothing of the server is left to wait for.
 * main.ts has set the exit code by then.
 */
function exitSoon(log: Logger): void {
  setTimeout(() => {
    log.flush(() => process.exit());
    setTimeout(() => process.exit(), 1000).unref();
  }, 200).unref();
}
