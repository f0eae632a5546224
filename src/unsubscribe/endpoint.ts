/**
 * The one-click unsubscribe endpoint, /unsubscribe/TOKEN on the https
 * listener (and the loopback http one), as RFC 8058 has it:
 *
 * - POST with the body "List-Unsubscribe=One-Click" (form-urlencoded or
 *   multipart/form-data, RFC 8058 §3.2) unsubscribes (unsubscribe.ts) and
 *   answers 200 with a short page: no cookie, no authentication, no
 *   redirect (§3.2). The token is the only credential (token.ts).
 * - GET never unsubscribes: link scanners and previews fetch URLs (§4); it
 *   shows a page whose button POSTs that same body.
 * - An unknown token is 404; another body 400; bodies over 4 KB 413.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Link } from './links.ts';
import { isToken } from './token.ts';
import { unsubscribe, type UnsubscribeDeps } from './unsubscribe.ts';

const MAX_BODY = 4096;
const PATH = /^\/unsubscribe\/([^/?]+)(\?.*)?$/;

/** Takes the request and returns true when it is for /unsubscribe/ (answered once the link is looked up); false leaves it to the caller. */
export type UnsubscribeHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

function page(res: ServerResponse, status: number, title: string, inner: string): void {
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><meta name="robots" content="noindex"><title>${title}</title></head><body style="font-family:sans-serif;max-width:32em;margin:3em auto"><h1>${title}</h1>${inner}</body></html>\n`;
  res
    .writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'x-robots-tag': 'noindex',
      'content-security-policy':
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
      'referrer-policy': 'no-referrer',
    })
    .end(body);
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** RFC 8058 §3.2: the key/value pair "List-Unsubscribe=One-Click", in either form encoding. */
export function isOneClick(type: string, body: string): boolean {
  if (type.startsWith('multipart/form-data')) {
    return /name="?List-Unsubscribe"?\r?\n(?:[^\r\n]+\r?\n)*\r?\nOne-Click\r?\n/.test(body);
  }
  return new URLSearchParams(body).get('List-Unsubscribe') === 'One-Click';
}

export function unsubscribeHandler(deps: UnsubscribeDeps): UnsubscribeHandler {
  return (req, res) => {
    const m = PATH.exec(req.url ?? '');
    if (!m) return false;
    // a token is base32: nothing to decode (and a malformed %-escape must not throw)
    const token = m[1] ?? '';
    const found = isToken(token) ? deps.store.unsubscribeLink(token) : Promise.resolve(undefined);
    found.then(
      (link) => answer(req, res, deps, link),
      (err: Error) => {
        req.resume();
        deps.log.error({ err: err.message }, 'cannot look up an unsubscribe link');
        page(res, 503, 'Try again', '<p>The link could not be looked up; try again later.</p>');
      },
    );
    return true;
  };
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  deps: UnsubscribeDeps,
  link: Link | undefined,
): void {
  if (!link) {
    req.resume();
    page(res, 404, 'Unknown link', '<p>This unsubscribe link is not one this server gave.</p>');
    return;
  }
  const domain = escape(link.domain);
  if (req.method === 'GET' || req.method === 'HEAD') {
    // RFC 8058 §4: a GET must not unsubscribe (scanners follow links)
    page(
      res,
      200,
      `Unsubscribe from ${domain}`,
      `<p>Stop all mail from ${domain} to this address?</p><form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click"><button type="submit">Unsubscribe</button></form>`,
    );
    return;
  }
  if (req.method !== 'POST') {
    req.resume();
    res.writeHead(405, { allow: 'GET, POST', 'content-type': 'text/plain' }).end('GET or POST\n');
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on('end', () => {
    if (size > MAX_BODY) {
      page(res, 413, 'Too large', '<p>The request is larger than 4 KB.</p>');
      return;
    }
    const type = String(req.headers['content-type'] ?? '');
    if (!isOneClick(type, Buffer.concat(chunks).toString('utf8'))) {
      page(res, 400, 'Not unsubscribed', '<p>The request is not List-Unsubscribe=One-Click.</p>');
      return;
    }
    unsubscribe(deps, link, 'one-click').then(
      () =>
        page(res, 200, 'Unsubscribed', `<p>${domain} will send no more mail to this address.</p>`),
      (err: Error) => {
        deps.log.error({ err: err.message, domain: link.domain }, 'unsubscribe not recorded');
        page(
          res,
          503,
          'Try again',
          '<p>The unsubscribe could not be recorded; try again later.</p>',
        );
      },
    );
  });
  req.on('error', () => res.destroy());
}
