/**
 * Doctor checks on the running server and the network around it:
 *   listeners    every [listen] smtp, submission and submissions endpoint
 *                answers with a 220 greeting (RFC 5321 §4.2, §3.1; implicit TLS
 *                first on submissions, RFC 8314 §3.3). A wildcard address is
 *                reached on loopback of its family.
 *   outbound-25  a TCP connection to port 25 out of this machine opens: to
 *                --probe HOST:PORT, else to the first MX of gmail.com. Connected:
 *                pass. Refused: fail, since Gmail's MX never refuses, so a
 *                refusal comes from a firewall on the way (and --probe names a
 *                host the user says is listening). A timeout, an unreachable
 *                network or a failed lookup: warning, "could not test": most
 *                providers that block port 25 drop the packets, but so does a
 *                broken route, and the difference cannot be seen from here.
 *                With a [delivery] relay, port 25 is not used and not probed.
 * Every connection is bounded by a timeout (5 s by default).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { formatEndpoint, type Endpoint } from '../config/endpoint.ts';
import type { ResolveFn } from '../dns/resolver.ts';
import type { IpFamily } from '../config/load.ts';
import { addresses, mx } from './lookup.ts';
import { fail, pass, warn, type CheckResult } from './report.ts';

export const CONNECT_TIMEOUT_MS = 5000;

type Outcome =
  | { kind: 'greeting'; line: string }
  | { kind: 'connected' }
  | { kind: 'refused' }
  | { kind: 'timeout' }
  | { kind: 'error'; message: string };

/** Open a connection and, with `greeting`, read the server's first reply. */
function dial(
  target: Endpoint,
  opts: { tls?: boolean; servername?: string; greeting: boolean; timeoutMs: number },
): Promise<Outcome> {
  return new Promise((resolve) => {
    let settled = false;
    const socket: Socket = opts.tls
      ? tlsConnect({
          host: target.host,
          port: target.port,
          servername: opts.servername,
          // The certificate is the certificate check's business; here only the greeting counts.
          rejectUnauthorized: false,
        })
      : netConnect({ host: target.host, port: target.port });
    const done = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => done({ kind: 'timeout' }), opts.timeoutMs);
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => {
      if (!opts.greeting) done({ kind: 'connected' });
    });
    let buffer = '';
    socket.on('data', (d: Buffer) => {
      buffer += d.toString('latin1');
      // RFC 5321 §4.2.1: the last line of a reply has a space after the code.
      const last = buffer.split('\r\n').find((l) => /^\d{3}(?: |$)/.test(l));
      if (last !== undefined) done({ kind: 'greeting', line: last });
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      done(
        err.code === 'ECONNREFUSED' ? { kind: 'refused' } : { kind: 'error', message: err.message },
      ),
    );
    socket.once('close', () => done({ kind: 'error', message: 'closed without a greeting' }));
  });
}

export interface ListenerInput {
  listen: {
    smtp: readonly Endpoint[];
    submission: readonly Endpoint[];
    submissions: readonly Endpoint[];
  };
  hostname: string;
  timeoutMs?: number;
}

/** Where to reach a listener: a wildcard address on the loopback of its family. */
export function reachable(e: Endpoint): Endpoint {
  if (e.host === '0.0.0.0') return { host: '127.0.0.1', port: e.port };
  if (e.host === '::') return { host: '::1', port: e.port };
  return e;
}

export async function checkListeners(input: ListenerInput): Promise<CheckResult> {
  const timeoutMs = input.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const all = (['smtp', 'submission', 'submissions'] as const).flatMap((kind) =>
    input.listen[kind].map((e) => ({ kind, endpoint: e })),
  );
  if (all.length === 0) {
    return warn(
      'listeners',
      'no smtp, submission or submissions listener is configured',
      'list endpoints under [listen] in posta.toml',
    );
  }
  const results = await Promise.all(
    all.map(async ({ kind, endpoint }) => {
      const at = reachable(endpoint);
      const outcome = await dial(at, {
        tls: kind === 'submissions',
        servername: input.hostname,
        greeting: true,
        timeoutMs,
      });
      return { kind, shown: `${kind} ${formatEndpoint(endpoint)}`, outcome };
    }),
  );
  const problems = results.flatMap(({ shown, outcome: o }) => {
    if (o.kind === 'greeting')
      return o.line.startsWith('220') ? [] : [`${shown} greets "${o.line}"`];
    if (o.kind === 'refused') return [`${shown} refused the connection`];
    if (o.kind === 'timeout') return [`${shown} sent no greeting within ${timeoutMs / 1000} s`];
    return [`${shown}: ${o.kind === 'error' ? o.message : o.kind}`];
  });
  if (problems.length === 0) {
    return pass('listeners', `${results.map((r) => r.shown).join(', ')} answer 220`);
  }
  const allRefused = results.every((r) => r.outcome.kind === 'refused');
  return fail(
    'listeners',
    allRefused
      ? `every listener refused the connection: ${results.map((r) => r.shown).join(', ')}`
      : problems.join('; '),
    allRefused
      ? 'posta is not running? start posta serve (systemctl start posta, or `posta serve --dir DIR`)'
      : 'restart posta serve so that it listens where posta.toml says, and check that no other program holds those ports',
  );
}

export interface OutboundInput {
  resolve: ResolveFn;
  /** --probe HOST:PORT; default: the first MX of gmail.com, port 25. */
  probe?: Endpoint;
  relay?: Endpoint | null;
  ipFamily: IpFamily;
  timeoutMs?: number;
}

export async function checkOutbound25(input: OutboundInput): Promise<CheckResult> {
  const timeoutMs = input.timeoutMs ?? CONNECT_TIMEOUT_MS;
  if (input.relay && !input.probe) {
    return pass(
      'outbound-25',
      `not needed: mail leaves through [delivery] relay ${formatEndpoint(input.relay)}`,
    );
  }
  const cannot = (why: string) =>
    warn(
      'outbound-25',
      `could not test: ${why}`,
      'run posta doctor with --probe HOST:25 naming a mail server that you know answers',
    );
  let host: string;
  let port = 25;
  if (input.probe) {
    host = input.probe.host;
    port = input.probe.port;
  } else {
    try {
      const first = (await mx(input.resolve, 'gmail.com'))[0];
      if (!first?.exchange) return cannot('gmail.com has no MX record in the configured DNS');
      host = first.exchange;
    } catch (err) {
      return cannot(`the MX lookup of gmail.com failed (${(err as Error).message})`);
    }
  }
  let ip = host;
  if (isIP(host) === 0) {
    const order: (4 | 6)[] =
      input.ipFamily === 'ipv6-only' ? [6] : input.ipFamily === 'ipv4-only' ? [4] : [4, 6];
    let found: string | undefined;
    try {
      for (const f of order) found ??= (await addresses(input.resolve, host, f))[0];
    } catch (err) {
      return cannot(`the address lookup of ${host} failed (${(err as Error).message})`);
    }
    if (!found) return cannot(`${host} has no address in the configured DNS`);
    ip = found;
  }
  const target = { host: ip, port };
  const shown = `${host === ip ? '' : `${host} `}${formatEndpoint(target)}`;
  const outcome = await dial(target, { greeting: false, timeoutMs });
  switch (outcome.kind) {
    case 'connected':
    case 'greeting':
      return pass('outbound-25', `connected to ${shown}`);
    case 'refused':
      return fail(
        'outbound-25',
        `the connection to ${shown} was refused: a firewall on the way blocks outbound port 25`,
        'open outbound port 25 in the firewall (or ask your provider to), or send through a smarthost with [delivery] relay',
      );
    case 'timeout':
      return warn(
        'outbound-25',
        `could not test: no answer from ${shown} within ${timeoutMs / 1000} s; many providers block outbound port 25 this way`,
        'ask your provider to open outbound port 25, or send through a smarthost with [delivery] relay',
      );
    default:
      return cannot(`connecting to ${shown} failed (${outcome.message})`);
  }
}
