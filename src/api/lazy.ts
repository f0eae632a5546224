/**
 * The HTTP APIs as the listeners see them, loaded on their first request:
 * which requests are the APIs' (by path alone), and the handler that imports
 * the API modules (SigV4, the SES and Resend wire formats, MIME composing,
 * templates, identities with their DNS checks) only then, so that a server
 * whose applications never call an API does not hold them in memory.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiStartDeps } from './http.ts';

/**
 * For the listeners that carry the APIs: a client has 30 s to send its
 * headers and 2 minutes for the whole request (a 50 MB message at 400 KB/s),
 * instead of Node's 60 s and 5 minutes, so slow uploads cannot hold the
 * memory budget long.
 */
export const API_TIMEOUTS = { headersTimeout: 30_000, requestTimeout: 120_000 };

/** Answers the request and returns true when it is for an API; false leaves it to the caller. */
export type ApiHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

export type Api = 'v2' | 'v1' | 'resend';

/** Which API a request is for, or null when it is none of them (the caller answers it). */
export function whichApi(req: IncomingMessage, path: string): { api: Api; route: string } | null {
  const at = path.indexOf('/v2/email/');
  if (at >= 0) return { api: 'v2', route: path.slice(at) };
  // Resend: `${baseUrl}/emails...`; the first /emails segment starts the route
  const resend = /^.*?(\/emails(?:\/[^/]*){0,2})$/.exec(path);
  if (resend) return { api: 'resend', route: resend[1] ?? '' };
  const type = String(req.headers['content-type'] ?? '');
  if (
    path.endsWith('/') &&
    req.method === 'POST' &&
    type.startsWith('application/x-www-form-urlencoded')
  ) {
    return { api: 'v1', route: '/' };
  }
  if (path.endsWith('/') && req.method === 'GET' && /[?&]Action=/.test(req.url ?? '')) {
    return { api: 'v1', route: '/' };
  }
  return null;
}

/** The API handler, its modules imported at the first request that is an API's. */
export function lazyApi(deps: ApiStartDeps): ApiHandler {
  let loaded: Promise<ApiHandler> | undefined;
  return (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    if (!whichApi(req, q < 0 ? url : url.slice(0, q))) return false;
    loaded ??= import('./http.ts').then((m) => m.createApi(deps));
    loaded.then(
      (handle) => handle(req, res),
      (err: Error) => {
        deps.log.error({ err: err.message }, 'the HTTP APIs did not load');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('The API did not load.\n');
      },
    );
    return true;
  };
}
