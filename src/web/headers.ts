/**
 * Headers every answer of the http and https listeners starts with. The
 * dashboard shares its origin with the APIs, the unsubscribe pages and the
 * metrics there, so none of those may be taken for a page that runs
 * anything: no type sniffing, no content, no framing. A handler that serves
 * a page (the dashboard, the unsubscribe page) sets its own policy, which
 * replaces this one.
 */
import type { ServerResponse } from 'node:http';

export function startAnswer(res: ServerResponse): void {
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('content-security-policy', "default-src 'none'; frame-ancestors 'none'");
}
