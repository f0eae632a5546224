/**
 * The queue's storage interface: what delivery asks of the engine that holds
 * the queue, in the queue's words, never SQL. Two engines implement it and
 * pass the same contract tests (queue-store.test.ts):
 * - sqlite/: node:sqlite, one node, the default (the spool, queue/spool.ts);
 * - postgres/: any number of nodes on one PostgreSQL database.
 *
 * Invariants, whatever the engine:
 * - enqueue() resolves only once the message and its recipients are durable
 *   (fsync'd; on PostgreSQL a COMMIT with synchronous_commit = on), so a 250
 *   sent after it survives kill -9 of posta and of the database. Messages
 *   enqueued together share one commit (group commit).
 * - Work is claimed under a lease: claim() hands each due recipient to one
 *   node at a time, with a lease token per claimed message. Every write about
 *   the claim (record, expand, hold, release) names its token and is refused
 *   (resolves false, writes nothing) once the claim was taken back, so a node
 *   that froze and wakes up late cannot overwrite another node's result.
 * - A node proves it is alive with heartbeat(); reap() gives the work of a
 *   node whose heartbeat is older than the lease back to the queue, due at
 *   once and marked as maybe sent. Delivery is at least once: what a dead
 *   node may have sent is sent again, and counted.
 *
 * On SQLite there is one node: leases are held in memory and end with the
 * process, and heartbeat() and reap() have nothing to do.
 */
import type { Held } from '../message/held.ts';
import type { OutcomeWrites } from '../events/outcomes.ts';
import type { Link } from '../unsubscribe/links.ts';
import type { SendingPair, SuppressionList } from '../suppression/suppression.ts';
import type {
  AttemptResult,
  DueMessage,
  Envelope,
  QueuedMessage,
  StoredMessage,
} from '../queue/spool.ts';

/** A claimed message: its due recipients, leased to this node under `lease`. */
export interface Claim extends DueMessage {
  lease: string;
}

/** What names a claim in the writes about it. */
export interface Lease {
  /** The message's queue id. */
  id: string;
  lease: string;
}

export interface ClaimOptions {
  now: number;
  /** At most this many recipients in all. */
  limit: number;
  /** Recipient domains at their limit: none of their recipients is claimed. */
  fullDomains?: ReadonlySet<string>;
  /** Messages this node leaves alone for now (a cool-down after an error). */
  skip?: ReadonlySet<string>;
  /** Only these domains' or messages' recipients (what an event can have made startable). */
  scope?: { domains: readonly string[] } | { messages: readonly string[] };
}

/** What reap() gave back. */
export interface Reaped {
  /** Recipients returned to the queue; each may have been sent already. */
  recipients: number;
  /** The nodes whose heartbeat had stopped. */
  nodes: string[];
}

export interface QueueOverview {
  messages: number;
  /** Recipients never tried, and tried and waiting. */
  queued: number;
  deferred: number;
  oldestSeconds: number;
  /** Delivery attempts by outcome (delivered, transient, permanent, expired). */
  lastHour: Record<string, number>;
  lastDay: Record<string, number>;
}

export interface QueueStore {
  readonly engine: 'sqlite' | 'postgres';
  /** This node's name, as its leases and heartbeats carry it. */
  readonly node: string;
  /**
   * Durable when it resolves (see above), with the queue id; rejects on a
   * write error, and then nothing of it stays. A held message with its body
   * in a file (message/held.ts) is read from the file, never whole into memory.
   */
  enqueue(envelope: Envelope, data: Buffer | Held, id?: string): Promise<string>;
  /** Due recipients, oldest first, grouped by message, each message leased to this node. */
  claim(o: ClaimOptions): Promise<Claim[]>;
  /**
   * An attempt's results (queue/spool.ts AttemptResult): recipients not in
   * `retry` are done, and the message goes with its last recipient. The
   * claim goes on (a message's domains may be recorded one by one). False,
   * with nothing written, when the lease was taken back.
   */
  record(claim: Lease, result: AttemptResult): Promise<boolean>;
  /** Ends a claim: its recipients still queued are due again when their next attempt says. */
  release(claim: Lease): Promise<boolean>;
  /** Replaces local recipients by their forwarding targets (due now), optionally with a new sender; the claim goes on. */
  expand(
    claim: Lease,
    replacements: { address: string; targets: string[] }[],
    sender?: string,
  ): Promise<boolean>;
  /**
   * Recipients of the claim over their warm-up's limit wait until `until`
   * without an attempt (warmup/warmup.ts); `reason` is what the queue shows
   * for them, and the wait lengthens their lifetime. The claim goes on.
   */
  hold(claim: Lease, addresses: readonly string[], until: number, reason: string): Promise<boolean>;
  /**
   * Which recipients are on their sending domain's suppression list
   * (suppression/suppression.ts), as pairKey() names them; one query for all.
   */
  suppressed(among: readonly SendingPair[]): Promise<Set<string>>;
  /** The suppression lists themselves, as the APIs and the dashboard change them. */
  readonly suppressions: SuppressionList;
  /** The unsubscribe link of a token (any case), or undefined when posta never gave it (unsubscribe/links.ts). */
  unsubscribeLink(token: string): Promise<Link | undefined>;
  /** The tags of one of our senders' messages, from its mail record; {} when none is kept. */
  mailTags(message: string): Promise<Record<string, string[]>>;
  /** Events and suppressions of no delivery (an unsubscribe), in one durable commit. */
  recordEvents(w: OutcomeWrites): Promise<void>;
  /** Called with the ids of this node's new messages once committed, so delivery can start at once. */
  onEnqueued: (ids: string[]) => void;
  /** A queued message's body, or null when it is gone. */
  message(id: string): Promise<StoredMessage | null>;
  /** The queue's messages with the recipients still to deliver. */
  list(): Promise<QueuedMessage[]>;
  /** Messages in the queue and the age of the oldest. */
  stats(now?: number): Promise<{ messages: number; oldestSeconds: number }>;
  /** What `posta status` shows of the queue: on PostgreSQL the whole cluster's. */
  overview(now?: number): Promise<QueueOverview>;
  /**
   * The earliest next attempt of a queued recipient, or null when there is
   * none; on PostgreSQL of those no claim holds (another node's claim is not
   * work for this one).
   */
  nextDue(): Promise<number | null>;
  /**
   * Retention (store/queue-writes.ts retention): what the store holds from
   * before `before` is deleted. On PostgreSQL one node does it for all (a
   * leader lease, postgres/leader.ts); the others' calls do nothing.
   */
  prune(before: number, now?: number): Promise<void>;
  /** This node is alive (every few seconds while it runs). */
  heartbeat(now?: number): Promise<void>;
  /** Gives back the work of nodes silent for longer than `leaseMs`. */
  reap(leaseMs: number, now?: number): Promise<Reaped>;
  /** Commits what is pending and closes; the node's claims end with it. */
  close(): Promise<void>;
}
