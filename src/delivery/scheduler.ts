/**
 * The delivery workers: claim due recipients from the queue store
 * (store/queue-store.ts), send them, and write down what happened.
 *
 * - Work unit: one message to the recipients of one domain (one transaction
 *   with several RCPT). A message is worked on by one round at a time: the
 *   round claims it, writes under its lease, and releases it at the end.
 * - Limits: `[delivery] concurrency` jobs at once in all, and per recipient
 *   domain `connections_per_domain` at once and `messages_per_minute_per_domain`,
 *   or what its `[delivery.destinations."DOMAIN"]` table says.
 *   A job held back by a limit stays due and is picked up on the next round.
 *   With other nodes on the same queue, each job also takes a message of the
 *   rate, and each connection the transport opens a slot it holds while the
 *   connection is open, from the limits they share (store/limits.ts).
 * - Local recipients (an address of one of our domains, from submission or
 *   port 25) are first replaced by their alias targets; one with no alias
 *   fails with 5.1.1.
 * - Outcomes: delivered and permanent recipients are done; transient ones are
 *   retried after first_retry, doubling up to max_retry, with ±20% jitter, and
 *   expire (4.4.7) once the message is older than `lifetime`. Failures are
 *   reported to the sender in one DSN per round, whatever the number of
 *   domains (never to the null sender);
 *   with delay_warning set, one "delayed" DSN is sent too.
 * - Warm-up ([warmup."SENDER"], warmup/warmup.ts): our senders' recipients
 *   over the day's limit for their destination are held until the next UTC
 *   day, without an attempt; the time held lengthens their lifetime.
 * - A round polls every second, and at once when a message is enqueued or a
 *   job ends, so `posta queue flush` from another process takes effect within
 *   a second. Rounds after an enqueue or a job look only at that message and
 *   domain, through an index, when a full round would cost too much (see
 *   round()).
 */
import { destinationLimits, type DeliveryConfig } from '../config/load.ts';
import type { Directory } from '../domains/directory.ts';
import type { Logger } from '../log/log.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  newQueueId,
  type Attempt,
  type AttemptResult,
  type DueMessage,
  type Spool,
} from '../queue/spool.ts';
import type { Claim, ClaimOptions, Lease, QueueStore } from '../store/queue-store.ts';
import { localLimits, type SharedLimits } from '../store/limits.ts';
import { buildDsn, type FailedRecipient } from '../bounce/dsn.ts';
import { generatedReceivedField, utf8Header } from '../message/header.ts';
import { formatReply, type AttemptInfo, type Outcome } from './outcome.ts';
import type { Job, Transport } from './transport.ts';
import { isSrs, type Srs } from '../srs/srs.ts';
import { domainOf, localPartOf } from '../address/address.ts';
import type { Metrics } from '../metrics/metrics.ts';
import { domainClass } from '../metrics/domain-class.ts';
import { outcomeWrites, type OutcomeWrites } from '../events/outcomes.ts';
import { pairKey, type SendingPair } from '../suppression/suppression.ts';
import type { Reservation, Warmup } from '../warmup/warmup.ts';

export interface SchedulerOptions {
  store: QueueStore;
  /** The SQLite tables not in the store yet: retention, the suppression list. */
  spool: Spool;
  transport: Transport;
  directory: Directory;
  srs: Srs;
  delivery: DeliveryConfig;
  hostname: string;
  log: Logger;
  metrics: Metrics;
  /** The [warmup] limits; none (no cost at all) when no warm-up is configured. */
  warmup?: Warmup | null;
  /** Limits shared with other nodes (store/limits.ts); on one node, its own counts are all. */
  limits?: SharedLimits;
}

const POLL_MS = 1000;
/** How long a destination whose shared limits are used up elsewhere waits here. */
const HELD_BACK_MS = 1000;
const COOL_DOWN_MS = 60_000;
/** About five minutes of retries (1, 2, 4, ... 30 s) before a round gives up. */
const RECORD_TRIES = 10;
const BATCH = 200;
const LOG_DAYS = 30;

/** How long a stop waits for the deliveries in flight (serve's whole stop has 4 s). */
const STOP_WAIT_MS = 1500;

export class Scheduler {
  private readonly o: SchedulerOptions;
  private readonly busy = new Set<string>();
  private readonly perDomain = new Map<string, number>();
  private readonly sentAt = new Map<string, number[]>();
  /** Destinations whose shared limits other nodes use up: not tried here until then. */
  private readonly heldBack = new Map<string, number>();
  /**
   * Destinations whose connection slots other nodes hold the rest of: this
   * node keeps to the jobs it has under way there (whose sessions it holds
   * and reuses), `n`, until `until`; then it asks for one more slot.
   */
  private readonly capped = new Map<string, { n: number; until: number }>();
  private active = 0;
  private timer: NodeJS.Timeout | null = null;
  private queued = false;
  /** A round is waiting for its claims; another is wanted when it ends. */
  private claiming = false;
  private again = false;
  /** What the next round looks at: all due work, or only these domains and messages. */
  private wantAll = false;
  private readonly wantDomains = new Set<string>();
  private readonly wantMessages = new Set<string>();
  /** When the next full round may run, and the timer that runs it when it was held back. */
  private nextFull = 0;
  private fullTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  private idle: (() => void) | null = null;
  /** Messages whose last round failed with an error: left alone until then. */
  private readonly coolDown = new Map<string, number>();
  private lastPrune = 0;

  constructor(o: SchedulerOptions) {
    this.o = o;
  }

  start(): void {
    this.o.store.onEnqueued = (ids) => this.kick({ messages: ids });
    this.timer = setInterval(() => this.kick(), POLL_MS);
    this.kick();
  }

  /**
   * Stop taking work and wait a moment for the jobs in flight. A job still
   * running then (a receiver that answers slowly or never) is left: its
   * recipients stay queued, so they are tried again after the restart
   * (delivery is at least once), and a stop stays within seconds.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.fullTimer) clearTimeout(this.fullTimer);
    if (this.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        new Promise<boolean>((resolve) => (this.idle = () => resolve(true))),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), STOP_WAIT_MS))),
      ]);
      clearTimeout(timer);
      if (!finished) {
        this.o.log.warn(
          { deliveries: this.active },
          'stopping with deliveries in progress; they stay queued and are tried again at the next start',
        );
      }
    }
    this.o.transport.close();
  }

  /**
   * Look for work soon: all due work, or only that of some domains and
   * messages (what an enqueue or a finished job can have made startable).
   */
  kick(scope?: { domains?: readonly string[]; messages?: readonly string[] }): void {
    if (scope === undefined) this.wantAll = true;
    for (const d of scope?.domains ?? []) this.wantDomains.add(d);
    for (const m of scope?.messages ?? []) this.wantMessages.add(m);
    this.schedule();
  }

  private schedule(): void {
    if (this.queued || this.stopped) return;
    this.queued = true;
    setImmediate(() => {
      this.queued = false;
      this.round();
    });
  }

  /**
   * A full round asks the spool for all due work. With a large backlog for a
   * domain at its limit that query walks the whole backlog, so full rounds
   * are spaced to take at most a tenth of the time; in between, the domains
   * and messages named by kick() are looked up through an index, so a freed
   * slot or a new message is used at once whatever the backlog.
   */
  private round(): void {
    if (this.stopped || this.active >= this.o.delivery.concurrency) return;
    if (this.claiming) {
      this.again = true;
      return;
    }
    this.claiming = true;
    this.claimRound()
      .catch((err: Error) =>
        this.o.log.error({ err: err.message }, 'cannot claim due mail; trying again in a second'),
      )
      .finally(() => {
        this.claiming = false;
        if (this.again) {
          this.again = false;
          this.schedule();
        }
      });
  }

  private async claimRound(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune > 3600_000) {
      this.lastPrune = now;
      void this.prune(now - LOG_DAYS * 86400_000);
    }
    for (const [id, until] of this.coolDown) if (until <= now) this.coolDown.delete(id);
    const skip = this.coolDown.size ? new Set([...this.busy, ...this.coolDown.keys()]) : this.busy;
    const full = new Set(
      [...this.perDomain.keys(), ...this.sentAt.keys(), ...this.heldBack.keys()].filter(
        (d) => !this.mayStart(d, now),
      ),
    );
    if (this.wantAll && now >= this.nextFull) {
      this.wantAll = false;
      this.wantDomains.clear();
      this.wantMessages.clear();
      const started = performance.now();
      await this.claimAndStart({ now, limit: BATCH, skip, fullDomains: full });
      this.nextFull = Date.now() + 9 * (performance.now() - started);
      return;
    }
    const domains = [...this.wantDomains].filter((d) => !full.has(d));
    const messages = [...this.wantMessages];
    this.wantDomains.clear();
    this.wantMessages.clear();
    const o = { now, limit: BATCH, skip, fullDomains: full };
    if (domains.length) await this.claimAndStart({ ...o, scope: { domains } });
    if (messages.length) await this.claimAndStart({ ...o, scope: { messages } });
    if (this.wantAll && !this.fullTimer) {
      this.fullTimer = setTimeout(() => {
        this.fullTimer = null;
        this.kick();
      }, this.nextFull - now);
    }
  }

  /** Retention of the store, and of the SQLite tables not in it yet when the store is another. */
  private async prune(before: number): Promise<void> {
    try {
      await this.o.store.prune(before);
      if (this.o.store.engine !== 'sqlite') this.o.spool.prune(before);
    } catch (err) {
      this.o.log.error(
        { err: (err as Error).message },
        'retention failed; trying again in an hour',
      );
    }
  }

  /** Claims due work and starts what the limits allow; the rest is released at once. */
  private async claimAndStart(o: ClaimOptions): Promise<void> {
    const claims = await this.o.store.claim(o);
    let blocked: Set<string>;
    try {
      blocked = await this.o.store.suppressed(claims.flatMap(suppressionPairs));
    } catch (err) {
      for (const m of claims) void this.releaseWithRetry(m);
      throw err;
    }
    for (const m of claims) {
      if (this.stopped || !this.begin(m, o.now, blocked)) void this.releaseWithRetry(m);
    }
  }

  /** Starts the work of one claim; false when no limit leaves room for it. */
  private begin(m: Claim, now: number, blocked: ReadonlySet<string>): boolean {
    if (this.active >= this.o.delivery.concurrency) return false;
    const local = m.recipients.filter((r) => this.o.directory.isLocal(domainOf(r.address)));
    if (local.length) {
      this.run(
        m,
        () =>
          this.expand(
            m,
            local.map((r) => r.address),
          ),
        [],
      );
      return true;
    }
    const byDomain = new Map<string, string[]>();
    for (const r of m.recipients) {
      const d = domainOf(r.address);
      byDomain.set(d, [...(byDomain.get(d) ?? []), r.address]);
    }
    // `concurrency` counts SMTP sessions: one per recipient domain of a message.
    const room = this.o.delivery.concurrency - this.active;
    const startable = [...byDomain].filter(([d]) => this.mayStart(d, now)).slice(0, room);
    if (startable.length === 0) return false;
    this.run(
      m,
      () => this.deliverMessage(m, startable, blocked),
      startable.map(([d]) => d),
    );
    return true;
  }

  /**
   * A message of the destination's rate across all nodes (store/limits.ts);
   * false when other nodes used it up, and then the destination waits a
   * moment here before it is tried again. (Connection slots are the
   * transport's: it holds one per open session, Job.slot.)
   */
  private async sharedRate(domain: string): Promise<boolean> {
    const { messagesPerMinute } = destinationLimits(this.o.delivery, domain);
    if (await (this.o.limits ?? localLimits).take(domain, messagesPerMinute)) return true;
    this.heldBack.set(domain, Date.now() + HELD_BACK_MS);
    return false;
  }

  /** On a shared queue, what the transport asks before each session it opens (Job.slot). */
  private slotFor(domain: string): Job['slot'] {
    const shared = this.o.limits;
    if (!shared || shared === localLimits) return undefined;
    const { connections } = destinationLimits(this.o.delivery, domain);
    return () => shared.slot(domain, connections);
  }

  /**
   * A job found every connection slot of `domain` held (it still counts in
   * perDomain): this node keeps to its other jobs there, or, with none,
   * waits a moment before it tries the destination again.
   */
  private noRoom(domain: string): void {
    const until = Date.now() + HELD_BACK_MS;
    const others = (this.perDomain.get(domain) ?? 1) - 1;
    if (others > 0) this.capped.set(domain, { n: others, until });
    else this.heldBack.set(domain, until);
  }

  private mayStart(domain: string, now: number): boolean {
    const until = this.heldBack.get(domain);
    if (until !== undefined) {
      if (until > now) return false;
      this.heldBack.delete(domain);
    }
    const limits = destinationLimits(this.o.delivery, domain);
    let most = limits.connections;
    const cap = this.capped.get(domain);
    if (cap && cap.until > now) most = Math.min(most, cap.n);
    else if (cap) this.capped.delete(domain);
    if ((this.perDomain.get(domain) ?? 0) >= most) return false;
    if (limits.messagesPerMinute > 0) {
      const recent = (this.sentAt.get(domain) ?? []).filter((t) => now - t < 60_000);
      if (recent.length) this.sentAt.set(domain, recent);
      else this.sentAt.delete(domain);
      if (recent.length >= limits.messagesPerMinute) return false;
    }
    return true;
  }

  /**
   * Runs one job: `domains` are its SMTP sessions (none for an expansion,
   * which counts as one). Its claim is released when it ends.
   */
  private run(claim: Claim, work: () => Promise<void>, domains: string[]): void {
    const id = claim.id;
    const sessions = Math.max(1, domains.length);
    this.busy.add(id);
    this.active += sessions;
    void work()
      .catch((err: Error) => {
        // A bug or a broken database must not turn into a busy loop.
        this.coolDown.set(id, Date.now() + COOL_DOWN_MS);
        this.o.log.error(
          { qid: id, err: err.message },
          'delivery round failed; retrying in a minute',
        );
      })
      .then(() => this.releaseWithRetry(claim))
      .finally(() => {
        this.busy.delete(id);
        this.active -= sessions;
        if (this.active === 0 && this.idle) this.idle();
        // The freed slot may suit anything; its own domains and message first.
        this.wantAll = true;
        this.kick({ domains, messages: [id] });
      });
  }

  /**
   * Local recipients become the addresses they forward to: alias targets, or
   * the original sender behind an SRS address. Mail from another domain then
   * leaves with an SRS sender of the forwarding domain, so SPF passes at the
   * receiver. A recipient with nowhere to go, or a message that has been
   * forwarded MAX_HOPS times (a loop), fails now.
   */
  private async expand(m: Claim, local: string[]): Promise<void> {
    const stored = await this.o.store.message(m.id);
    if (!stored) return;
    const data = stored.head;
    const failed: { address: string; outcome: Outcome }[] = [];
    const replacements: { address: string; targets: string[] }[] = [];
    const hops = countReceived(data);
    for (const address of local) {
      if (hops >= MAX_HOPS) {
        const why = `Mail forwarding loop: the message has ${hops} Received fields`;
        failed.push({ address, outcome: permanent('5.4.6', why) });
        continue;
      }
      const t = this.targets(address);
      if (t.ok) replacements.push({ address, targets: t.targets });
      else failed.push({ address, outcome: permanent(t.enhanced, t.why) });
    }
    if (replacements.length) {
      const forwarding = domainOf(replacements[0]?.address ?? '');
      const sender =
        m.sender !== '' && !this.o.directory.isLocal(domainOf(m.sender))
          ? this.o.srs.forward(m.sender, forwarding)
          : undefined;
      if (!(await this.o.store.expand(m, replacements, sender))) return this.lost(m);
      for (const r of replacements) {
        this.o.log.info({ qid: m.id, rcpt: r.address, targets: r.targets, sender }, 'forwarded');
      }
    }
    if (failed.length) await this.report(m, data, this.assess(m, failed, {}, 0));
  }

  private targets(
    address: string,
  ): { ok: true; targets: string[] } | { ok: false; enhanced: string; why: string } {
    const local = localPartOf(address);
    if (isSrs(local)) {
      const r = this.o.srs.reverse(address);
      return r.ok
        ? { ok: true, targets: [r.address] }
        : { ok: false, enhanced: '5.1.1', why: `<${address}>: ${r.reason}` };
    }
    const targets = this.o.directory.resolve(address).filter((t) => t !== address);
    if (targets.length) return { ok: true, targets };
    if (this.o.directory.hasAlias(address)) {
      return {
        ok: false,
        enhanced: '5.4.6',
        why: `<${address}>: its aliases lead only to each other`,
      };
    }
    return { ok: false, enhanced: '5.1.1', why: `<${address}>: no such recipient here` };
  }

  private async deliverMessage(
    m: Claim,
    groups: [string, string[]][],
    blocked: ReadonlySet<string>,
  ): Promise<void> {
    // Read while each group takes its domain's slot below: what comes before
    // a group's first await runs now, so the rest of this round sees the slots.
    const loaded = this.o.store.message(m.id);
    const suppressedNow = new Set<string>();
    const settled = await Promise.allSettled(
      groups.map(async ([domain, recipients]) => {
        // suppressed recipients are never tried (suppression/suppression.ts),
        // and take nothing of the domain's limits
        for (const r of suppressible(m) ? recipients : []) {
          if (blocked.has(pairKey({ domain: domainOf(m.sender), address: r })))
            suppressedNow.add(r);
        }
        let tried = recipients.filter((r) => !suppressedNow.has(r));
        // warm-up: those past today's limit wait for tomorrow, untried
        const room =
          this.o.warmup && m.source === 'submission' && tried.length
            ? this.o.warmup.take(m.sender, domain, tried.length, Date.now())
            : null;
        const waiting = room ? tried.slice(room.allowed) : [];
        const held = new Set(waiting);
        if (room) tried = tried.slice(0, room.allowed);
        this.perDomain.set(domain, (this.perDomain.get(domain) ?? 0) + 1);
        const sent = Date.now();
        const rated =
          tried.length > 0 && destinationLimits(this.o.delivery, domain).messagesPerMinute > 0;
        if (rated) this.sentAt.set(domain, [...(this.sentAt.get(domain) ?? []), sent]);
        // a session that does not happen takes nothing of the rate
        const skipped = (): Assessed => {
          const at = this.sentAt.get(domain) ?? [];
          const i = rated ? at.lastIndexOf(sent) : -1;
          if (i >= 0) at.splice(i, 1);
          return nothingTried();
        };
        const started = Date.now();
        let delivered = 0;
        try {
          const message = await loaded;
          // deleted meanwhile (posta queue delete), or the claim was taken back
          if (!message) return skipped();
          if (room && waiting.length && !(await this.holdForWarmup(m, waiting, room)))
            return skipped();
          // other nodes used up the destination's rate
          if (tried.length && !(await this.sharedRate(domain))) return skipped();
          const r = tried.length
            ? await this.o.transport.deliver({
                queueId: m.id,
                sender: m.sender,
                domain,
                recipients: tried,
                message,
                smtpUtf8: m.smtpUtf8,
                slot: this.slotFor(domain),
              })
            : { outcomes: new Map<string, Outcome>(), info: {} };
          // other nodes hold every connection slot of the destination
          if (r.noRoom) {
            this.noRoom(domain);
            return skipped();
          }
          const outcomes = recipients
            .filter((address) => !held.has(address))
            .map((address) => ({
              address,
              outcome: suppressedNow.has(address)
                ? permanent(
                    '5.1.1',
                    `<${address}> is on the suppression list of ${domainOf(m.sender)}; posta did not send to it (posta suppress del ${address} --domain ${domainOf(m.sender)})`,
                  )
                : (r.outcomes.get(address) ?? unknownOutcome),
            }));
          const a = this.assess(m, outcomes, r.info, Date.now() - started);
          // Delivered and deferred recipients are written down at once;
          // failures wait for the other domains, so that the sender gets one
          // DSN for the message (until then a crash retries them: no loss).
          const now = a.attempts.filter((x) => !FINAL_FAILURE.has(x.outcome));
          const n = now.filter((x) => x.outcome === 'delivered').length;
          if (now.length) {
            await this.recordWithRetry(m, {
              attempts: now,
              retry: a.retry,
              notices: [],
              warned: false,
              ...this.outcomes(m, now, suppressedNow),
              ...(room && n
                ? {
                    warmup: [
                      { sender: room.sender, destination: room.destination, day: room.day, n },
                    ],
                  }
                : {}),
            });
          }
          delivered = n;
          return a;
        } finally {
          if (room) this.o.warmup?.settle(room, delivered);
          const n = (this.perDomain.get(domain) ?? 1) - 1;
          if (n > 0) this.perDomain.set(domain, n);
          else this.perDomain.delete(domain);
        }
      }),
    );
    const done = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    // what notices quote; a read that failed failed every group (thrown below)
    const stored = await loaded.catch(() => null);
    if (stored) {
      await this.report(
        m,
        stored.head,
        {
          attempts: done.flatMap((a) => a.attempts.filter((x) => FINAL_FAILURE.has(x.outcome))),
          failed: done.flatMap((a) => a.failed),
          delayed: done.flatMap((a) => a.delayed),
        },
        suppressedNow,
      );
    }
    // Every group has ended before the message is released; then report a failure.
    const failure = settled.find((r) => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /**
   * Sort one attempt's outcomes: the log lines, when each deferred recipient
   * is tried again, and what the sender is to be told. Logs and counts them.
   */
  private assess(
    m: DueMessage,
    results: { address: string; outcome: Outcome }[],
    info: AttemptInfo,
    durationMs: number,
  ): Assessed {
    const d = this.o.delivery;
    const now = Date.now();
    const out: Assessed = { attempts: [], retry: new Map(), failed: [], delayed: [] };
    for (const { address, outcome } of results) {
      let kind: Attempt['outcome'] = outcome.kind;
      let reply = formatReply(outcome.reply);
      if (outcome.kind === 'transient') {
        const r = m.recipients.find((x) => x.address === address);
        // the time warm-up held it does not count (warmup/warmup.ts)
        const expiresAt = m.createdAt + d.lifetimeMs + (r?.warmupMs ?? 0);
        if (now >= expiresAt) {
          kind = 'expired';
          reply = `${reply} (gave up: the message was in the queue for ${Math.round(d.lifetimeMs / 1000)} s)`;
        } else {
          out.retry.set(address, Math.min(now + this.backoff(r?.attempts ?? 0), expiresAt));
        }
      }
      out.attempts.push({
        message: m.id,
        recipient: address,
        at: now,
        durationMs,
        outcome: kind,
        reply,
        ...info,
      });
      const report: FailedRecipient = {
        address,
        status: kind === 'expired' ? '4.4.7' : outcome.reply.enhanced,
        reply,
        remoteMta: info.ip ? info.mx : undefined,
        lastAttempt: new Date(now),
      };
      if (FINAL_FAILURE.has(kind)) out.failed.push(report);
      else if (kind === 'transient') out.delayed.push(report);
      this.logAttempt(m.id, address, kind, reply, info, durationMs);
      const cls = domainClass(domainOf(address));
      this.o.metrics.deliveries.inc({ outcome: OUTCOME_EVENT[kind], domain_class: cls });
      if (kind === 'delivered')
        this.o.metrics.latency.observe({ domain_class: cls }, (now - m.createdAt) / 1000);
    }
    return out;
  }

  /**
   * The round's failed recipients written down with their one DSN in one
   * commit, and a delay warning when one is due.
   */
  private async report(
    m: Claim,
    data: Buffer,
    r: { attempts: Attempt[]; failed: FailedRecipient[]; delayed: FailedRecipient[] },
    suppressedNow: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    const d = this.o.delivery;
    const notices = [];
    const unverified = unverifiedSender(m);
    const bounce = m.sender !== '' && unverified === null;
    if (r.failed.length && bounce) notices.push(await this.notice(m, data, 'failed', r.failed));
    // a recipient's wait for warm-up is no delay to warn of
    const waited = (a: string) => m.recipients.find((x) => x.address === a)?.warmupMs ?? 0;
    const warn =
      d.delayWarningMs > 0 &&
      !m.warned &&
      r.delayed.some((x) => Date.now() - m.createdAt - waited(x.address) >= d.delayWarningMs);
    if (warn && bounce) notices.push(await this.notice(m, data, 'delayed', r.delayed));
    if (unverified !== null && (r.failed.length || warn)) {
      this.o.log.info(
        { qid: m.id, to: m.sender, action: r.failed.length ? 'failed' : 'delayed' },
        `no bounce: sender not verified (${unverified})`,
      );
    }
    if (r.attempts.length === 0 && notices.length === 0 && !warn) return;
    await this.recordWithRetry(m, {
      attempts: r.attempts,
      retry: new Map(),
      notices,
      warned: warn,
      ...this.outcomes(m, r.attempts, suppressedNow),
    });
  }

  /** Our senders' mail: the events of these attempts, and the hard bounces to suppress. */
  private outcomes(
    m: DueMessage,
    attempts: Attempt[],
    suppressedNow: ReadonlySet<string>,
  ): OutcomeWrites | Record<string, never> {
    if (m.source !== 'submission' || attempts.length === 0) return {};
    return outcomeWrites(
      {
        message: m.id,
        createdAt: m.createdAt,
        domain: domainOf(m.sender),
        hostname: this.o.hostname,
        // a wait for warm-up lengthens the lifetime (warmup/warmup.ts)
        expiresAt:
          m.createdAt +
          this.o.delivery.lifetimeMs +
          Math.max(
            0,
            ...attempts.map(
              (a) => m.recipients.find((r) => r.address === a.recipient)?.warmupMs ?? 0,
            ),
          ),
        suppressed: suppressedNow,
      },
      attempts,
    );
  }

  /**
   * Recipients past their warm-up's limit: they wait in the queue, untried
   * (warmup/warmup.ts). False when the claim was taken back.
   */
  private async holdForWarmup(m: Claim, waiting: string[], room: Reservation): Promise<boolean> {
    if (!(await this.o.store.hold(m, waiting, room.until, room.reason))) {
      this.lost(m);
      return false;
    }
    for (const rcpt of waiting) {
      this.o.log.info(
        {
          qid: m.id,
          rcpt,
          destination: room.destination,
          until: new Date(room.until).toISOString(),
        },
        'held for warm-up',
      );
    }
    return true;
  }

  /**
   * Write an attempt down, trying again for a while when the database fails
   * (disk full, locked): giving up would send the message again.
   */
  private async recordWithRetry(claim: Lease, result: AttemptResult): Promise<void> {
    const id = claim.id;
    for (let i = 0; ; i++) {
      try {
        if (!(await this.o.store.record(claim, result))) this.lost(claim);
        return;
      } catch (err) {
        // Stopped: the queue may be closed already; the recipients stay queued.
        if (this.stopped || i >= RECORD_TRIES - 1) throw err;
        this.o.log.error(
          { qid: id, err: (err as Error).message },
          'cannot record a delivery; trying again',
        );
        await sleep(Math.min(1000 * 2 ** i, 30_000));
      }
    }
  }

  /**
   * End a claim, trying again for a while when the database fails: a claim
   * left on keeps its recipients from every node until this one restarts.
   */
  private async releaseWithRetry(claim: Lease): Promise<void> {
    for (let i = 0; ; i++) {
      try {
        await this.o.store.release(claim);
        return;
      } catch (err) {
        if (this.stopped || i >= RECORD_TRIES - 1) {
          this.o.log.error(
            { qid: claim.id, err: (err as Error).message },
            'cannot release a claimed message; it waits for the next start',
          );
          return;
        }
        await sleep(Math.min(1000 * 2 ** i, 30_000));
      }
    }
  }

  /**
   * The claim was taken back (this node was silent past its lease, and
   * another node has the message now): what this round did is not written,
   * and the message may be sent again, which at least once allows.
   */
  private lost(claim: Lease): void {
    this.o.log.warn(
      { qid: claim.id },
      'the claim on this message was taken back; another node delivers it, and it may arrive twice',
    );
  }

  private backoff(attempts: number): number {
    const d = this.o.delivery;
    const base = Math.min(d.firstRetryMs * 2 ** attempts, d.maxRetryMs);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  private async notice(
    m: DueMessage,
    original: Buffer,
    action: 'failed' | 'delayed',
    recipients: FailedRecipient[],
  ) {
    const fromDomain = this.noticeDomain(m.sender);
    const id = newQueueId();
    let data = await buildDsn({
      action,
      hostname: this.o.hostname,
      fromDomain,
      to: m.sender,
      queueId: m.id,
      arrival: new Date(m.createdAt),
      original,
      recipients,
    });
    // RFC 5321 §4.4: every message carries a trace field of each server it passed, its first too
    data = Buffer.concat([
      Buffer.from(generatedReceivedField(this.o.hostname, id, new Date())),
      data,
    ]);
    const keys = this.o.directory.keys(fromDomain);
    if (keys.length) {
      const { signMessage } = await import('../dkim/sign.ts'); // loaded by the first bounce
      data = Buffer.concat([Buffer.from(await signMessage(data, fromDomain, keys)), data]);
    }
    this.o.log.info({ qid: m.id, dsn: id, to: m.sender, action }, 'dsn queued');
    return {
      id,
      envelope: {
        sender: '',
        recipients: [m.sender],
        source: 'bounce' as const,
        clientIp: '127.0.0.1',
        smtpUtf8: utf8Header(data),
      },
      data,
    };
  }

  /** The local domain a DSN comes from: the sender's, else the one hostname is in. */
  private noticeDomain(sender: string): string {
    const dir = this.o.directory;
    const own = domainOf(sender);
    if (dir.isLocal(own)) return own;
    const names = dir.names();
    return (
      names.find((n) => this.o.hostname === n || this.o.hostname.endsWith(`.${n}`)) ??
      names[0] ??
      this.o.hostname
    );
  }

  private logAttempt(
    qid: string,
    rcpt: string,
    kind: Attempt['outcome'],
    reply: string,
    info: AttemptInfo,
    ms: number,
  ): void {
    const event = OUTCOME_EVENT[kind];
    const fields = {
      qid,
      rcpt,
      mx: info.mx,
      ip: info.ip,
      tls: info.tls,
      tlsVerified: info.tlsVerified,
      reply,
      ms,
    };
    if (kind === 'delivered') this.o.log.info(fields, event);
    else this.o.log.warn(fields, event);
  }
}

/**
 * Why mail from another server may not be bounced to its envelope sender, or
 * null when it may: a sender that neither passed SPF nor has an aligned DKIM
 * pass may be forged, and a DSN to it is backscatter that lands on whoever
 * was forged (RFC 5321 §6.2 lets a server drop such a notice). Our own mail
 * (submission, sendmail, the API) always may.
 */
function unverifiedSender(m: DueMessage): string | null {
  const a = m.senderAuth;
  if (m.source !== 'inbound' || a === null) return null;
  if (a.spf === 'pass' || a.dkim === 'pass') return null;
  return `SPF ${a.spf}, DKIM ${a.dkim}`;
}

/** The mail-log event (and metric label) of each attempt outcome. */
const OUTCOME_EVENT = {
  delivered: 'delivered',
  transient: 'deferred',
  permanent: 'bounced',
  expired: 'expired',
} as const;

/** RFC 5321 §6.3: a message forwarded this many times is in a loop (Postfix's hopcount_limit). */
const MAX_HOPS = 50;

/** Outcomes that end a recipient with a DSN to the sender. */
const FINAL_FAILURE: ReadonlySet<Attempt['outcome']> = new Set(['permanent', 'expired']);

/** One attempt's outcomes, sorted (see assess()). */
interface Assessed {
  attempts: Attempt[];
  /** Deferred recipient → when to try again. */
  retry: Map<string, number>;
  failed: FailedRecipient[];
  delayed: FailedRecipient[];
}

function nothingTried(): Assessed {
  return { attempts: [], retry: new Map(), failed: [], delayed: [] };
}

function countReceived(data: Buffer): number {
  const end = data.indexOf('\r\n\r\n');
  const head = (end < 0 ? data : data.subarray(0, end)).toString('latin1');
  return (head.match(/^Received:/gim) ?? []).length;
}

function permanent(enhanced: string, text: string): Outcome {
  return { kind: 'permanent', reply: { code: 550, enhanced, text } };
}

const unknownOutcome: Outcome = {
  kind: 'transient',
  reply: { code: 451, enhanced: '4.3.0', text: 'No result for this recipient' },
};

/** What the suppression list is asked about a claim: only our senders' mail is suppressed. */
function suppressionPairs(m: DueMessage): SendingPair[] {
  if (!suppressible(m)) return [];
  const domain = domainOf(m.sender);
  return m.recipients.map((r) => ({ domain, address: r.address }));
}

function suppressible(m: DueMessage): boolean {
  return m.source === 'submission' && m.sender !== '';
}
