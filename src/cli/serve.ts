import { loadConfig } from '../config/load.ts';
import { formatEndpoint } from '../config/endpoint.ts';
import { RecentErrors, createLogger, type Logger } from '../log/log.ts';
import { startApp, type App } from '../app.ts';
import { positionals, type Command } from './command.ts';

export const serve: Command = {
  name: 'serve',
  help: `Usage: posta serve [--dir DIR]

Runs posta in the foreground with the config folder DIR: the listeners of
[listen], the delivery workers, and the certificate of [tls] (reloaded when the
files change) or of [acme] (obtained and renewed). Logs are JSON lines on
stdout; a "ready" line follows the "listening" lines. SIGTERM or SIGINT stops
it after the connections in progress.`,
  async run(args) {
    positionals(this, args, []);
    const config = await loadConfig(args.dir);
    const errors = new RecentErrors();
    const log = createLogger({ errors });
    const app = await startApp(config, { log, errors });
    announce(app, log);
    await untilSignal(app, log);
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

export function untilSignal(app: App, log: Logger): Promise<void> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'stopping');
      app.stop().then(resolve, (err: Error) => {
        log.error({ err: err.message }, 'stop failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
