/**
 * Delivery limits that must hold across every node that delivers from one
 * queue: `connections_per_domain` (sessions open to a destination at once)
 * and `messages_per_minute_per_domain`, or a destination's own table.
 *
 * The scheduler keeps its own counts of what this node does (delivery/
 * scheduler.ts) and asks here too, so that what other nodes do counts:
 * - slot(): a connection slot of the destination, taken by the transport
 *   (delivery/mx.ts) for each connection it opens and held while that
 *   connection is open, kept idle for reuse included, so that the
 *   destination never sees more than `limit` from the whole cluster; null
 *   when all `limit` are held;
 * - take(): one message of the destination's rate, before each job; false
 *   when the last minute's messages reached it. A job that then finds no
 *   slot free has used its message of the rate all the same: the cluster
 *   sends less than the rate then, never more.
 * Both fail closed: when the engine cannot answer, the call rejects and the
 * session does not start (its recipients stay queued), so a cluster that
 * lost its database stops delivering rather than run unlimited.
 *
 * On one node (SQLite) the scheduler's own counts are the whole truth, and
 * localLimits grants every request.
 */

export interface Slot {
  /** Gives the slot back; idempotent. */
  release(): Promise<void>;
}

export interface SharedLimits {
  slot(destination: string, limit: number): Promise<Slot | null>;
  take(destination: string, perMinute: number): Promise<boolean>;
}

const noSlot: Slot = { release: () => Promise.resolve() };

export const localLimits: SharedLimits = {
  slot: () => Promise.resolve(noSlot),
  take: () => Promise.resolve(true),
};
