/**
 * The SMTP listeners of [listen]: smtp (25, inbound MX, STARTTLS offered, no
 * AUTH), submission (587, STARTTLS, AUTH required) and submissions (465,
 * implicit TLS, AUTH required), on top of smtp-server with enhanced status
 * codes, PIPELINING, 8BITMIME, SMTPUTF8 and SIZE; no CHUNKING.
 *
 * AUTH PLAIN and LOGIN take an account's address and password, or an access
 * key's id and secret (keys/keys.ts), as SES's SMTP credentials; both go
 * through the same throttle, failure delay and count. The session's user is
 * then the address or the key id (principal.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import type { ResolvedConfig } from '../config/load.ts';
import type { Endpoint } from '../config/endpoint.ts';
import { CLOSE_GRACE_MS, listen } from '../net/listen.ts';
import type { Directory } from '../domains/directory.ts';
import type { Spool } from '../queue/spool.ts';
import type { Logger } from '../log/log.ts';
import type { CertStore } from '../tls/store.ts';
import { parseAddress } from '../address/address.ts';
import { isHeavy, verifyOrDelay, verifyPassword } from '../users/hash.ts';
import { HashBusy, HashGate } from '../users/gate.ts';
import { upgradeHash } from '../users/accounts.ts';
import { PostaSMTPServer } from './connection.ts';
import { AuthThrottle, type Attempt } from './throttle.ts';
import { checkInboundRecipient, checkSender, checkSubmissionRecipient } from './policy.ts';
import { principalOf, type Principal } from './principal.ts';
import { isKeyId, type KeyStore } from '../keys/keys.ts';
import type { Quotas } from '../keys/quota.ts';
import { receive, type ReceiveDeps, type Source } from './receive.ts';
import {
  C421Busy,
  C452TooManyRecipients,
  C454AuthThrottled,
  C535AuthFailed,
  C554Listed,
  SmtpReply,
} from './reply.ts';
import { unsubscribeAddressToken } from '../unsubscribe/mailto.ts';
import type { Bulk } from '../unsubscribe/fields.ts';
import type { ReportBudget } from '../reports/budget.ts';
import { listedIn } from '../verify/dnsbl.ts';
import type { ResolveFn } from '../dns/resolver.ts';
import type { Verifier } from '../verify/pool.ts';
import type { Signer } from '../dkim/pool.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { Srs } from '../srs/srs.ts';
import { VerifiedCache } from './verified-cache.ts';
import type { MemoryBudget } from './data.ts';
import { clientNetwork } from '../address/ip.ts';

export type ListenerKind = 'smtp' | 'submission' | 'submissions';

export interface SmtpDeps {
  config: ResolvedConfig;
  directory: Directory;
  spool: Spool;
  /** Where accepted mail is queued (durable when enqueue() resolves), and unsubscribes are kept. */
  queue: ReceiveDeps['queue'];
  log: Logger;
  /** The certificate, swapped in place on renewal or reload. */
  certs: CertStore;
  /** DNS for DNSBL lookups. */
  resolve: ResolveFn;
  /** Inbound SPF/DKIM/DMARC/ARC checks, off the main thread. */
  verify: Verifier;
  /** Bytes of incoming messages in memory, over all listeners (data.ts). */
  budget: MemoryBudget;
  /** DKIM signing of submitted mail, off the main thread. */
  sign: Signer;
  metrics: Metrics;
  srs: Srs;
  /** Access keys, which log in as SMTP credentials too. */
  keys: KeyStore;
  /** The keys' quotas: the same instance as the HTTP APIs', so a rate holds over both. */
  quotas: Quotas;
  /** One-click unsubscribe and Feedback-ID for submitted mail (unsubscribe/fields.ts). */
  bulk: Bulk;
  /** What reading DMARC and TLS reports may spend of the SMTP thread. */
  reportBudget: ReportBudget;
}

export interface Listener {
  kind: ListenerKind;
  endpoint: Endpoint;
  port: number;
}

export interface SmtpListeners {
  listeners: Listener[];
  close(): Promise<void>;
}

const AUTH_FAILURE_DELAY_MS = 1000;
const AUTH_FAILURES_PER_SESSION = 3;

export async function startSmtp(deps: SmtpDeps): Promise<SmtpListeners> {
  const throttle = new AuthThrottle();
  const verified = new VerifiedCache();
  const gate = new HashGate();
  const perIp = new Map<string, number>();
  const perNetwork = new Map<string, number>();
  const servers: PostaSMTPServer[] = [];
  const listeners: Listener[] = [];

  const close = () =>
    Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())))).then(
      () => undefined,
    );
  try {
    for (const kind of ['smtp', 'submission', 'submissions'] as const) {
      for (const endpoint of deps.config.listen[kind]) {
        const limits = deps.config.limits;
        const shared = { throttle, verified, gate, perIp, perNetwork };
        const server = new PostaSMTPServer(options(kind, deps, shared), {
          maxErrors: limits.errorsPerSession,
          sessionTimeoutMs: limits.sessionTimeoutMs,
          commandTimeoutMs: limits.commandTimeoutMs,
          preMailTimeoutMs: limits.preMailTimeoutMs,
          stressTimeoutMs: limits.stressTimeoutMs,
          maxClients: limits.connections,
          onStress: (on, connections) =>
            deps.log.warn(
              { kind, port: endpoint.port, connections, limit: limits.connections },
              on
                ? `stress mode on: every timeout is ${limits.stressTimeoutMs / 1000} s`
                : 'stress mode off',
            ),
        });
        server.on('error', (err: Error) => deps.log.warn({ err: err.message, kind }, 'smtp error'));
        const port = await listen(server.server, endpoint, kind);
        servers.push(server);
        listeners.push({ kind, endpoint, port });
      }
    }
  } catch (err) {
    // Those already listening would answer with nobody behind them.
    await close();
    throw err;
  }
  // New connections (implicit TLS and STARTTLS) use a renewed certificate at once.
  deps.certs.onChange((c) => {
    for (const s of servers) s.updateSecureContext({ key: c.key, cert: c.cert });
  });
  return { listeners, close };
}

interface Shared {
  throttle: AuthThrottle;
  verified: VerifiedCache;
  gate: HashGate;
  perIp: Map<string, number>;
  /** Connections per /24 or /64 (clientNetwork). */
  perNetwork: Map<string, number>;
}

function options(kind: ListenerKind, deps: SmtpDeps, shared: Shared): SMTPServerOptions {
  const { config, directory, log } = deps;
  const submission = kind !== 'smtp';
  const source: Source = submission ? 'submission' : 'inbound';
  const sessionFailures = new Map<string, number>();
  const counted = new Set<string>();
  return {
    name: config.hostname,
    banner: 'posta',
    secure: kind === 'submissions',
    key: deps.certs.current.key,
    cert: deps.certs.current.cert,
    minVersion: 'TLSv1.2',
    logger: false,
    disableReverseLookup: true,
    hideENHANCEDSTATUSCODES: false,
    hidePIPELINING: false,
    hideDSN: true,
    hideREQUIRETLS: true,
    size: config.limits.messageSize,
    maxRecipients: config.limits.recipients,
    maxClients: config.limits.connections,
    // The idle timeouts are connection.ts's; this one bounds the TLS handshake
    // of port 465 and the wait for a half-closed client.
    socketTimeout: config.limits.preMailTimeoutMs,
    // On stop, sessions still open after this get 421 and are closed.
    closeTimeout: CLOSE_GRACE_MS,
    authMethods: ['PLAIN', 'LOGIN'],
    authOptional: !submission,
    allowInsecureAuth: false,
    disabledCommands: submission ? [] : ['AUTH'],

    onConnect(session, callback) {
      const ip = session.remoteAddress;
      const net = clientNetwork(ip);
      const n = add(shared.perIp, ip, 1);
      const m = add(shared.perNetwork, net, 1);
      counted.add(session.id);
      if (n > config.limits.connectionsPerIp) {
        return callback(C421Busy('Too many connections from your address; try again later'));
      }
      if (m > config.limits.connectionsPerPrefix) {
        log.info({ cid: session.id, ip, network: net, kind }, 'refused: too many from network');
        return callback(C421Busy(`Too many connections from ${net}; try again later`));
      }
      log.debug({ cid: session.id, ip, kind }, 'connect');
      deps.metrics.connections.inc({ listener: kind });
      if (submission || config.inbound.dnsbl.length === 0) return callback();
      listedIn(ip, config.inbound.dnsbl, deps.resolve).then(
        (zone) => {
          if (!zone) return callback();
          log.info({ cid: session.id, ip, zone }, 'refused: listed');
          callback(C554Listed(`Your address ${ip} is listed in ${zone}`));
        },
        () => callback(),
      );
    },

    onClose(session) {
      // smtp-server calls onClose also for sessions it never passed to
      // onConnect (closed within its 100 ms early-talker wait, or refused by
      // maxClients); only those counted may be taken off.
      if (!counted.delete(session.id)) return;
      add(shared.perIp, session.remoteAddress, -1);
      add(shared.perNetwork, clientNetwork(session.remoteAddress), -1);
      sessionFailures.delete(session.id);
    },

    onAuth(auth, session, callback) {
      const ip = session.remoteAddress;
      const name = auth.username ?? '';
      const fail = async (reply: SmtpReply) => {
        const n = (sessionFailures.get(session.id) ?? 0) + 1;
        sessionFailures.set(session.id, n);
        log.info({ cid: session.id, ip, user: name, method: auth.method }, 'auth failed');
        deps.metrics.authFailures.inc();
        await sleep(AUTH_FAILURE_DELAY_MS);
        callback(
          n >= AUTH_FAILURES_PER_SESSION
            ? C421Busy('Too many failed authentications; closing')
            : reply,
        );
      };
      const check = (attempt: Attempt) =>
        authenticate(deps, shared, name, auth.password ?? '')
          .then(async (user) => {
            if (!user) {
              attempt.failed();
              return fail(C535AuthFailed('Authentication credentials invalid'));
            }
            attempt.succeeded();
            log.info({ cid: session.id, ip, user, method: auth.method }, 'auth ok');
            callback(null, { user });
          })
          .catch((err: Error) => {
            attempt.cancelled();
            if (!(err instanceof HashBusy)) return callback(err);
            log.info({ cid: session.id, ip, user: name }, 'auth busy');
            callback(C454AuthThrottled('Too many logins at once; busy; try again later'));
          });
      // Counted before the hash runs, so parallel attempts cannot overrun a limit.
      void shared.throttle.begin(ip, name).then((attempt) => {
        if (attempt === 'busy') {
          log.info({ cid: session.id, ip, user: name }, 'auth busy');
          return callback(C454AuthThrottled('Too many logins at once; busy; try again later'));
        }
        if (!attempt) {
          log.info({ cid: session.id, ip, user: name }, 'auth throttled');
          return callback(C454AuthThrottled('Too many failed authentications; try again later'));
        }
        void check(attempt);
      });
    },

    onMailFrom(address, session, callback) {
      if (!submission) {
        if (address.address) {
          const a = parseAddress(address.address);
          if (a.ok && directory.isLocal(a.value.domain))
            address.address = `${a.value.local}@${a.value.domain}`;
        }
        return callback();
      }
      let principal: Principal;
      try {
        principal = principalOf(String(session.user), deps.keys);
      } catch (err) {
        return callback(err as Error); // a key revoked since it logged in
      }
      const d = checkSender(principal, address.address, directory);
      if (!d.ok) return callback(d.reply);
      address.address = d.address;
      callback();
    },

    onRcptTo(address, session, callback) {
      const d = submission
        ? checkSubmissionRecipient(address.address, directory)
        : checkInboundRecipient(address.address, directory, deps.srs, config.hostname);
      if (!d.ok) {
        log.info(
          { cid: session.id, rcpt: address.address, reply: d.reply.message },
          'rcpt refused',
        );
        return callback(d.reply);
      }
      // an unsubscribe address is consumed, not queued: alone in its
      // transaction (RFC 5321 §4.5.3.1.10: the client sends the rest in another)
      const unsub = (a: string) => !submission && unsubscribeAddressToken(a) !== null;
      const others = session.envelope.rcptTo;
      if (others.length && (unsub(d.address) || others.some((r) => unsub(r.address)))) {
        return callback(
          C452TooManyRecipients(
            'An unsubscribe address takes a message of its own; send the rest apart',
          ),
        );
      }
      address.address = d.address;
      callback();
    },

    onData(stream, session, callback) {
      receive(stream, session, source, deps)
        .then((a) => {
          log.info(
            {
              qid: a.queueId,
              cid: session.id,
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              rcpts: session.envelope.rcptTo.length,
              size: a.size,
              msgid: a.messageId,
              source,
              user: session.user,
            },
            'accepted',
          );
          deps.metrics.accepted.inc({ source });
          callback(
            null,
            a.unsubscribed ? '2.0.0 Ok: unsubscribed' : `2.0.0 Ok: queued as ${a.queueId}`,
          );
        })
        .catch((err: Error) => {
          stream.resume(); // drain what is left, so the session can go on
          if ((err as { code?: string }).code === 'ECONNECTION') {
            // the client left or was cut off (a DATA timeout): nothing to answer
            log.info({ cid: session.id }, 'connection closed during DATA');
            return callback(err);
          }
          if (!(err instanceof SmtpReply)) {
            log.error({ cid: session.id, err: err.message }, 'data failed');
            return callback(
              new SmtpReply(451, '4.3.0', 'Local error in processing; try again later'),
            );
          }
          log.info({ cid: session.id, reply: err.message }, 'message refused');
          callback(err);
        });
    },
  };
}

/** Adds `d` to a count, dropping it at 0; returns the new count. */
function add(counts: Map<string, number>, key: string, d: number): number {
  const n = (counts.get(key) ?? 0) + d;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
  return n;
}

/**
 * The session's user when the credentials are right: an account's address
 * (hashing waits for the gate), or an access key's id (its secret compared
 * in constant time; no hash, so no gate; a revoked key has no secret left).
 */
async function authenticate(
  deps: SmtpDeps,
  shared: Shared,
  name: string,
  password: string,
): Promise<string | null> {
  if (isKeyId(name)) return deps.keys.check(name, password)?.id ?? null;
  const { gate, verified } = shared;
  const a = parseAddress(name);
  const account = a.ok ? deps.directory.account(a.value.local, a.value.domain) : undefined;
  if (!a.ok || !account) {
    await gate.run(() => verifyOrDelay(password, undefined));
    return null;
  }
  const user = `${a.value.local}@${a.value.domain}`;
  const right = await verified.verify(user, password, account.hash, () =>
    gate.run(() => verifyPassword(password, account.hash), { heavy: isHeavy(account.hash) }),
  );
  if (!right) return null;
  verified.add(user, password, account.hash);
  // An older hash (scrypt) is replaced now that the password is known; the
  // login does not wait for it, and a failure leaves it for the next login.
  upgradeHash(deps.config.dir, a.value, password, account.hash, gate).then(
    (hash) => {
      if (!hash) return;
      verified.add(user, password, hash);
      deps.log.info({ user }, 'password hash upgraded');
    },
    (err: Error) => deps.log.warn({ user, err: err.message }, 'password hash upgrade failed'),
  );
  return user;
}

export type { SMTPServerSession };
