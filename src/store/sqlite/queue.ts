/**
 * The queue store on SQLite (store/queue-store.ts): the spool (queue/spool.ts)
 * of one node. Its leases are held here, in memory: a claimed message is left
 * out of the next claims until its claim is released, and all
 * claims end with the process, so after a restart everything still queued is
 * due again (delivery is at least once). There is no other node to be silent,
 * so heartbeat() and reap() have nothing to do.
 */
import { randomUUID } from 'node:crypto';
import type { Held } from '../../message/held.ts';
import type { AttemptResult, Envelope, Spool } from '../../queue/spool.ts';
import type { OutcomeWrites } from '../../events/outcomes.ts';
import { mailRecord } from '../../events/events.ts';
import { attemptCounts, queueCounts } from '../../queue/inspect.ts';
import { findLink, type Link } from '../../unsubscribe/links.ts';
import {
  pairKey,
  sqliteSuppressions,
  suppressedAmong,
  type SendingPair,
  type SuppressionList,
} from '../../suppression/suppression.ts';
import { prepared } from '../../db/db.ts';
import type {
  Claim,
  ClaimOptions,
  Lease,
  QueueOverview,
  QueueStore,
  Reaped,
} from '../queue-store.ts';

export class SqliteQueueStore implements QueueStore {
  readonly engine = 'sqlite';
  readonly node: string;
  private readonly spool: Spool;
  /** The lease of each claimed message. */
  private readonly leases = new Map<string, string>();
  readonly suppressions: SuppressionList;

  constructor(spool: Spool, node = 'local') {
    this.spool = spool;
    this.node = node;
    this.suppressions = sqliteSuppressions(spool.db);
  }

  get onEnqueued(): (ids: string[]) => void {
    return this.spool.onEnqueued;
  }

  set onEnqueued(fn: (ids: string[]) => void) {
    this.spool.onEnqueued = fn;
  }

  enqueue(envelope: Envelope, data: Buffer | Held, id?: string): Promise<string> {
    return this.spool.enqueue(envelope, data, id);
  }

  claim(o: ClaimOptions): Promise<Claim[]> {
    const busy = new Set(this.leases.keys());
    for (const id of o.skip ?? []) busy.add(id);
    const due = this.spool.due(o.now, o.limit, busy, o.fullDomains, o.scope);
    return Promise.resolve(
      due.map((m) => {
        const lease = randomUUID();
        this.leases.set(m.id, lease);
        return { ...m, lease };
      }),
    );
  }

  async record(claim: Lease, result: AttemptResult): Promise<boolean> {
    if (!this.holds(claim)) return false;
    await this.spool.record(claim.id, result);
    return true;
  }

  release(claim: Lease): Promise<boolean> {
    if (!this.holds(claim)) return Promise.resolve(false);
    this.leases.delete(claim.id);
    return Promise.resolve(true);
  }

  async expand(
    claim: Lease,
    replacements: { address: string; targets: string[] }[],
    sender?: string,
  ): Promise<boolean> {
    if (!this.holds(claim)) return false;
    await this.spool.expand(claim.id, replacements, sender);
    return true;
  }

  async hold(
    claim: Lease,
    addresses: readonly string[],
    until: number,
    reason: string,
  ): Promise<boolean> {
    if (!this.holds(claim)) return false;
    await this.spool.holdForWarmup(claim.id, addresses, until, reason);
    return true;
  }

  suppressed(among: readonly SendingPair[]): Promise<Set<string>> {
    if (among.length === 0) return Promise.resolve(new Set());
    const q = suppressedAmong(among);
    const rows = prepared(this.spool.db, q.sql).all(...q.args) as unknown as SendingPair[];
    return Promise.resolve(new Set(rows.map(pairKey)));
  }

  overview(now = Date.now()): Promise<QueueOverview> {
    const db = this.spool.db;
    return Promise.resolve({
      ...queueCounts(db),
      oldestSeconds: Math.round(this.spool.stats(now).oldestSeconds),
      lastHour: attemptCounts(db, now - 3600_000),
      lastDay: attemptCounts(db, now - 86400_000),
    });
  }

  unsubscribeLink(token: string): Promise<Link | undefined> {
    return Promise.resolve(findLink(this.spool.db, token));
  }

  mailTags(message: string): Promise<Record<string, string[]>> {
    return Promise.resolve(mailRecord(this.spool.db, message)?.tags ?? {});
  }

  recordEvents(w: OutcomeWrites): Promise<void> {
    return this.spool.recordEvents(w);
  }

  message(id: string) {
    return Promise.resolve(this.spool.message(id));
  }

  list() {
    return Promise.resolve(this.spool.list());
  }

  stats(now?: number) {
    return Promise.resolve(this.spool.stats(now));
  }

  nextDue() {
    return Promise.resolve(this.spool.nextDue());
  }

  prune(before: number, now?: number): Promise<void> {
    this.spool.prune(before, now);
    return Promise.resolve();
  }

  heartbeat(): Promise<void> {
    return Promise.resolve();
  }

  reap(): Promise<Reaped> {
    return Promise.resolve({ recipients: 0, nodes: [] });
  }

  close(): Promise<void> {
    this.leases.clear();
    return this.spool.close();
  }

  private holds(claim: Lease): boolean {
    return this.leases.get(claim.id) === claim.lease;
  }
}
