/**
 * Delivery over SMTP to the recipient domain's MX hosts (or to a relay).
 *
 * RFC 5321 §5.1: hosts in MX order, each host's addresses in turn; a host
 * that cannot be reached or refuses the session is skipped for the next. A
 * host whose TLS handshake fails is tried once more without STARTTLS, unless
 * MTA-STS demands TLS (RFC 7435: opportunistic security falls back to clear
 * text rather than not delivering). Once a server takes part in a transaction its replies decide, per
 * recipient. If no host could be used, the last failure decides (usually
 * transient, so the queue retries later).
 *
 * MTA-STS (sts.ts): with an "enforce" policy, hosts the policy does not name
 * are skipped and TLS must verify; with "testing" it is only logged.
 *
 * Sessions are kept open after a transaction (sessions.ts) and reused by the
 * next message for the same host, so a burst to one domain does not pay a
 * TCP and TLS handshake per message.
 *
 * An attempt has a ceiling (`[delivery] attempt_timeout`) over all its hosts:
 * each reply has its deadline (deadline.ts), and the whole attempt ends,
 * transient, when the ceiling passes. Stopping posta destroys the sessions
 * in use, so a receiver that trickles its replies cannot hold a stop.
 */
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import type { DeliveryConfig, RelayConfig } from '../config/load.ts';
import type { Resolver } from '../dns/resolver.ts';
import type { Logger } from '../log/log.ts';
import { local, type AttemptInfo, type Outcome } from './outcome.ts';
import { findRoute, hostAddresses, type Host } from './route.ts';
import { Session, SessionFailure, type SessionOptions, type TlsMode } from './session.ts';
import { SessionPool } from './sessions.ts';
import { selfOf, withoutSelf, type Self } from './self.ts';
import type { Endpoint } from '../config/endpoint.ts';
import type { StsPolicies } from './sts.ts';
import type { Job, JobResult, Transport } from './transport.ts';

export interface MxTransportOptions {
  hostname: string;
  delivery: DeliveryConfig;
  resolver: Resolver;
  sts: StsPolicies | null;
  log: Logger;
  /** posta's own SMTP listen addresses, to find itself among MX hosts (RFC 5321 §5.1). */
  listen: readonly Endpoint[];
  /** Port of receiving servers; 25 except in tests of the bench. */
  port?: number;
}

export class MxTransport implements Transport {
  private readonly o: MxTransportOptions;
  private readonly pool = new SessionPool();
  /** Sessions in a transaction now; destroyed by close(). */
  private readonly busy = new Set<Session>();
  private readonly self: Self;

  constructor(o: MxTransportOptions) {
    this.o = o;
    this.self = selfOf(o.hostname, o.listen, [
      o.delivery.sourceIpv4 ?? '',
      o.delivery.sourceIpv6 ?? '',
    ]);
  }

  private closed = false;

  close(): void {
    this.closed = true;
    this.pool.close();
    for (const s of this.busy) s.destroy();
    this.busy.clear();
  }

  async deliver(job: Job): Promise<JobResult> {
    const until = Date.now() + this.o.delivery.attemptTimeoutMs;
    const relay = this.o.delivery.relay;
    if (relay && (relay.domains.length === 0 || relay.domains.includes(job.domain))) {
      return this.viaRelay(job, relay, until);
    }
    const route = await findRoute(job.domain, this.o.resolver, this.o.delivery.ipFamily);
    if (route.kind === 'fail') return all(job, route.outcome, {});
    // RFC 5321 §5.1: drop this server and the MX hosts it is preferred to.
    const { hosts, looped } = withoutSelf(route.hosts, this.self);
    if (looped && hosts.length === 0) {
      // Permanent, as Postfix has it: DNS sends the mail back here, and
      // trying again would only loop again until someone fixes the MX.
      const text = `mail for ${job.domain} loops back to myself (MX points to this server)`;
      return all(job, local('permanent', '5.4.6', text), {});
    }
    const policy = this.o.sts ? await this.o.sts.get(job.domain).catch(() => null) : null;
    let last: { outcome: Outcome; info: AttemptInfo } | null = null;
    for (const host of hosts) {
      if (Date.now() >= until) break;
      if (policy && !policy.allows(host.name)) {
        const why = `MX ${host.name} is not in the MTA-STS policy of ${job.domain}`;
        if (policy.mode === 'enforce') {
          last = { outcome: local('transient', '4.7.5', why), info: { mx: host.name } };
          continue;
        }
        this.o.log.warn(
          { qid: job.queueId, mx: host.name },
          `${why} (testing mode; delivering anyway)`,
        );
      }
      const tls: TlsMode = policy?.mode === 'enforce' ? 'verified' : 'opportunistic';
      const result = await this.tryHost(job, host, tls, until);
      if ('outcomes' in result) return result;
      last = result;
    }
    return all(
      job,
      last?.outcome ?? local('transient', '4.4.1', 'No MX host could be used'),
      last?.info ?? {},
    );
  }

  private async tryHost(
    job: Job,
    host: Host,
    tls: TlsMode,
    until: number,
  ): Promise<JobResult | { outcome: Outcome; info: AttemptInfo }> {
    let last: { outcome: Outcome; info: AttemptInfo } | null = null;
    for (const ip of host.addresses) {
      const opts = this.sessionOptions(ip, this.o.port ?? 25, host.name, tls);
      const result = await this.sendVia(job, opts, until);
      if ('outcomes' in result) return result;
      last = result;
      if (Date.now() >= until) break;
    }
    return (
      last ?? { outcome: local('transient', '4.4.1', `${host.name} has no address`), info: {} }
    );
  }

  private async viaRelay(job: Job, relay: RelayConfig, until: number): Promise<JobResult> {
    // The relay is a host, not a mail domain: its A/AAAA, never its MX.
    const ips = isIP(relay.host)
      ? [relay.host]
      : await hostAddresses(relay.host, this.o.resolver, this.o.delivery.ipFamily).catch(
          () => [] as string[],
        );
    let auth: SessionOptions['auth'];
    if (relay.username) {
      let pass = '';
      try {
        pass = relay.passwordFile ? readFileSync(relay.passwordFile, 'utf8').trim() : '';
      } catch (err) {
        return all(
          job,
          local('transient', '4.3.5', `Cannot read the relay password: ${(err as Error).message}`),
          {},
        );
      }
      auth = { user: relay.username, pass };
    }
    let last: { outcome: Outcome; info: AttemptInfo } | null = null;
    for (const ip of ips) {
      const opts = this.sessionOptions(
        ip,
        relay.port,
        relay.host,
        relay.tls === 'tls' ? 'implicit' : 'verified',
      );
      const result = await this.sendVia(job, { ...opts, auth }, until);
      if ('outcomes' in result) return result;
      last = result;
    }
    return all(
      job,
      last?.outcome ?? local('transient', '4.4.3', `The relay ${relay.host} has no address`),
      last?.info ?? { mx: relay.host },
    );
  }

  private sessionOptions(
    ip: string,
    port: number,
    servername: string,
    tls: TlsMode,
  ): SessionOptions {
    const d = this.o.delivery;
    return {
      ip,
      port,
      servername,
      hostname: this.o.hostname,
      tls,
      localAddress: isIP(ip) === 6 ? d.sourceIpv6 : d.sourceIpv4,
      connectTimeoutMs: d.connectTimeoutMs,
      replyTimeoutMs: d.replyTimeoutMs,
      attemptTimeoutMs: d.attemptTimeoutMs,
    };
  }

  /**
   * A transaction on a pooled or new session; a session that fails to start
   * gives its failure. A new session first takes a connection slot when the
   * job asks for one (a shared queue), and gives it back when it closes.
   */
  private async sendVia(
    job: Job,
    opts: SessionOptions,
    until: number,
  ): Promise<JobResult | { outcome: Outcome; info: AttemptInfo }> {
    const base: AttemptInfo = { mx: opts.servername, ip: opts.ip };
    const scope = job.slot ? job.domain : '';
    for (let round = 0; round < 2; round++) {
      let session = round === 0 ? this.pool.take(opts, scope) : null;
      const reused = session !== null;
      if (!session) {
        const slot = job.slot ? await job.slot() : null;
        if (job.slot && !slot) return { outcomes: new Map(), info: base, noRoom: true };
        const release = () =>
          slot
            ?.release()
            .catch((err: Error) =>
              this.o.log.error(
                { qid: job.queueId, domain: job.domain, err: err.message },
                'cannot give back a connection slot',
              ),
            );
        try {
          session = await Session.open(opts, until);
        } catch (err) {
          void release();
          if (!(err instanceof SessionFailure)) throw err;
          if (err.tlsFailed && opts.tls === 'opportunistic') {
            // RFC 7435: when nothing demands TLS, plaintext beats no delivery.
            this.o.log.warn(
              { qid: job.queueId, mx: opts.servername, ip: opts.ip, err: err.message },
              'TLS handshake failed; retrying without STARTTLS',
            );
            return this.sendVia(job, { ...opts, tls: 'none' }, until);
          }
          return { outcome: err.outcome, info: base };
        }
        void session.ended.then(release);
      }
      if (this.closed) {
        // stopped while this session was opening: no transaction on it now
        session.destroy();
        return { outcome: local('transient', '4.4.2', 'posta is stopping'), info: base };
      }
      const info: AttemptInfo = { ...base, ...session.info, reused };
      this.busy.add(session);
      const { outcomes, unsent } = await session
        .send(job, until)
        .finally(() => this.busy.delete(session));
      if (session.usable) this.pool.give(opts, session, scope);
      else session.close();
      // A kept-open connection the server had closed meanwhile: try once more on a new one.
      if (unsent && reused) continue;
      return { outcomes, info };
    }
    return {
      outcome: local('transient', '4.4.2', `Lost the connection to ${opts.servername}`),
      info: base,
    };
  }
}

function all(job: Job, outcome: Outcome, info: AttemptInfo): JobResult {
  return { outcomes: new Map(job.recipients.map((r) => [r, outcome])), info };
}
