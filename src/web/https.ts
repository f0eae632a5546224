/**
 * The https listener ([listen] https, port 443):
 *
 * - MTA-STS policy hosting (RFC 8461 §3.3): GET /.well-known/mta-sts.txt on
 *   host mta-sts.DOMAIN answers the policy of DOMAIN as text/plain, the same
 *   text whose hash `posta dns` publishes as the `_mta-sts` TXT id.
 * - ACME tls-alpn-01 (RFC 8737): while a challenge for a name is pending, a
 *   TLS handshake for that name gets the challenge certificate, with ALPN
 *   "acme-tls/1". Node picks the certificate (SNI) before it sees the
 *   client's ALPN list, so for those few seconds an ordinary client asking
 *   for that name gets the challenge certificate too.
 *
 * - The SES and Resend APIs (api/http.ts), over TLS for applications on
 *   other hosts.
 * - With `[dashboard] https = true`, the dashboard (dashboard/), the same one
 *   as the http listener's, with the same guard; its cookies are Secure here.
 *
 * Everything else is 404. The certificate is the CertStore's, so renewals
 * apply to new connections at once.
 */
import { createServer } from 'node:https';
import type { ResolvedConfig } from '../config/load.ts';
import { listenAll } from '../net/listen.ts';
import type { Logger } from '../log/log.ts';
import { stsPolicy } from '../mtasts/policy.ts';
import type { CertStore } from '../tls/store.ts';
import type { Challenges } from '../acme/challenges.ts';
import { API_TIMEOUTS, type ApiHandler } from '../api/lazy.ts';
import type { DashboardHandler } from './dashboard/lazy.ts';
import { startAnswer } from './headers.ts';

export interface HttpsDeps {
  config: ResolvedConfig;
  /** Local domains now (they can change while running). */
  domains: () => string[];
  certs: CertStore;
  challenges: Challenges;
  log: Logger;
  api: ApiHandler;
  /** The dashboard, when [dashboard] https is on. */
  dashboard?: DashboardHandler | undefined;
}

export async function startHttps(deps: HttpsDeps): Promise<{ close(): Promise<void> }> {
  const { config } = deps;
  return listenAll(
    config.listen.https,
    'https',
    () => {
      const server = createServer(
        {
          // Clients that send no SNI (an address, not a name) get the current one.
          key: deps.certs.current.key,
          cert: deps.certs.current.cert,
          SNICallback: (name, cb) =>
            cb(null, deps.challenges.alpn.get(name.toLowerCase()) ?? deps.certs.context),
          ALPNProtocols: ['acme-tls/1', 'http/1.1'],
          minVersion: 'TLSv1.2',
          ...API_TIMEOUTS,
        },
        (req, res) => {
          startAnswer(res);
          if (deps.api(req, res)) return;
          const host = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase();
          const domain = host.startsWith('mta-sts.') ? host.slice(8) : '';
          const ok =
            req.method === 'GET' &&
            req.url === '/.well-known/mta-sts.txt' &&
            config.mtaSts.mode !== 'none' &&
            deps.domains().includes(domain);
          if (!ok && deps.dashboard) {
            deps.dashboard(req, res);
            return;
          }
          if (!ok) {
            res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
            return;
          }
          const body = stsPolicy({
            mode: config.mtaSts.mode,
            mx: config.hostname,
            maxAge: config.mtaSts.maxAge,
          });
          res
            .writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600' })
            .end(body);
        },
      );
      server.on('tlsClientError', () => {}); // scanners and ACME probes hang up mid-handshake
      deps.certs.onChange((c) => server.setSecureContext({ key: c.key, cert: c.cert }));
      return server;
    },
    deps.log,
  );
}
