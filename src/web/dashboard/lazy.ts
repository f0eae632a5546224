/**
 * The dashboard as the http listener sees it: its modules (hono, the pages,
 * the password hashing of a login) load at its first request, so a server
 * nobody opens in a browser does not hold them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DashboardDeps } from './dashboard.ts';

export type DashboardHandler = (req: IncomingMessage, res: ServerResponse) => void;

export function lazyDashboard(deps: DashboardDeps): DashboardHandler {
  let loaded: Promise<DashboardHandler> | undefined;
  return (req, res) => {
    loaded ??= import('./dashboard.ts').then((m) => m.createDashboard(deps));
    loaded.then(
      (handle) => handle(req, res),
      (err: Error) => {
        deps.log.error({ err: err.message }, 'the dashboard did not load');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('The dashboard did not load.\n');
      },
    );
  };
}
