/**
 * The suppression list, per sending domain, as SES keeps it per account: an
 * address that bounced hard (or complained, or was added by hand or through
 * PutSuppressedDestination) gets no more mail from that domain. A message to
 * it is still accepted (with its MessageId), but the suppressed recipient is
 * never tried: the scheduler fails it at once with a Bounce event of subtype
 * OnAccountSuppressionList, and the sender gets a DSN, on every path (the
 * APIs and SMTP).
 *
 * What suppresses by itself: a permanent failure whose enhanced status says
 * the address is bad (RFC 3463 §3.2: X.1.x but X.1.7 and X.1.8, which are
 * about the sender, and 5.2.1 "mailbox disabled");
 * a full mailbox, a message refused as spam or for its size does not.
 *
 * UNSUBSCRIBE: the recipient used the one-click List-Unsubscribe link or
 * its mailto: address (unsubscribe/). SES v2's suppression list has only
 * BOUNCE and COMPLAINT (its unsubscribes live in contact lists instead), so
 * the SES APIs show an UNSUBSCRIBE entry as COMPLAINT, the reason that means
 * "this person asked for no more mail" (sesReason below); posta's own CLI
 * and events show UNSUBSCRIBE.
 *
 * Table suppressed (queue.db): domain, address, reason (BOUNCE | COMPLAINT |
 * UNSUBSCRIBE), message (what caused it, when known), created_at.
 */
import { runSqlite, statement, type Statement } from '../store/statement.ts';
import { prepared, type Db } from '../db/db.ts';

export type SuppressionReason = 'BOUNCE' | 'COMPLAINT' | 'UNSUBSCRIBE';

/** The reason as the SES v2 API can say it: it has no UNSUBSCRIBE (see the top). */
export function sesReason(r: SuppressionReason): 'BOUNCE' | 'COMPLAINT' {
  return r === 'UNSUBSCRIBE' ? 'COMPLAINT' : r;
}

export interface Suppressed {
  domain: string;
  address: string;
  reason: SuppressionReason;
  message: string | null;
  createdAt: number;
}

/** Does a permanent failure with this enhanced status make the address one to suppress? */
export function suppressesAddress(enhanced: string): boolean {
  // X.1.7 and X.1.8 are about the sender's address, not the recipient's (RFC 3463 §3.2)
  if (enhanced === '5.1.7' || enhanced === '5.1.8') return false;
  return /^5\.1\.\d+$/.test(enhanced) || enhanced === '5.2.1';
}

/** Addresses are compared lower-cased, as SES does. */
function norm(address: string): string {
  return address.toLowerCase();
}

export interface NewSuppression {
  domain: string;
  address: string;
  reason: SuppressionReason;
  message?: string | null;
}

export function suppression(s: NewSuppression, now = Date.now()): Statement {
  return statement(
    `INSERT INTO suppressed (domain, address, reason, message, created_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (domain, address) DO UPDATE SET reason = excluded.reason,
         message = excluded.message, created_at = excluded.created_at`,
    s.domain,
    norm(s.address),
    s.reason,
    s.message ?? null,
    now,
  );
}

/** A recipient of a sending domain's mail, as the scheduler asks about it. */
export interface SendingPair {
  domain: string;
  address: string;
}

/** The key of a pair in what suppressedAmong finds. */
export function pairKey(p: SendingPair): string {
  return `${p.domain} ${norm(p.address)}`;
}

/** Which of `pairs` are on their domain's list: one query for a round's recipients, on either engine. */
export function suppressedAmong(pairs: readonly SendingPair[]): Statement {
  return statement(
    `SELECT domain, address FROM suppressed WHERE (domain, address) IN (VALUES ${pairs
      .map(() => '(?, ?)')
      .join(', ')})`,
    ...pairs.flatMap((p) => [p.domain, norm(p.address)]),
  );
}

/** Takes an address off a domain's list. */
export function unsuppression(domain: string, address: string): Statement {
  return statement(
    'DELETE FROM suppressed WHERE domain = ? AND address = ?',
    domain,
    norm(address),
  );
}

export interface SuppressionQuery {
  domains: readonly string[];
  /** Only this address. */
  address?: string;
  reason?: SuppressionReason;
  /** Added at or after, and at or before (ms). */
  from?: number;
  to?: number;
}

/** The entries of `o.domains`, newest first: a SELECT in the dialect both engines speak. */
export function suppressionQuery(o: SuppressionQuery): Statement {
  if (o.domains.length === 0) return statement('SELECT * FROM suppressed WHERE 1 = 0');
  const where = [`domain IN (${o.domains.map(() => '?').join(', ')})`];
  const args: (string | number)[] = [...o.domains];
  if (o.address !== undefined) {
    where.push('address = ?');
    args.push(norm(o.address));
  }
  if (o.reason !== undefined) {
    where.push('reason = ?');
    args.push(o.reason);
  }
  if (o.from !== undefined) {
    where.push('created_at >= ?');
    args.push(o.from);
  }
  if (o.to !== undefined) {
    where.push('created_at <= ?');
    args.push(o.to);
  }
  return statement(
    `SELECT domain, address, reason, message, created_at FROM suppressed
      WHERE ${where.join(' AND ')} ORDER BY created_at DESC, address`,
    ...args,
  );
}

/** A row of suppressionQuery, from either engine (PostgreSQL gives BIGINT as text). */
export interface SuppressedRow {
  domain: string;
  address: string;
  reason: string;
  message: string | null;
  created_at: number | string;
}

export function suppressedRow(r: SuppressedRow): Suppressed {
  return {
    domain: r.domain,
    address: r.address,
    reason: r.reason as SuppressionReason,
    message: r.message,
    createdAt: Number(r.created_at),
  };
}

/**
 * The lists as the APIs, the dashboard and `posta suppress` change and read
 * them, wherever the queue is: the scheduler reads the same table
 * (QueueStore.suppressed), so what is added here is never sent to.
 */
export interface SuppressionList {
  add: (s: NewSuppression) => Promise<void>;
  /** False when it was not on the list. */
  remove: (domain: string, address: string) => Promise<boolean>;
  list: (o: SuppressionQuery) => Promise<Suppressed[]>;
}

/** The lists in a SQLite queue database (one node). */
export function sqliteSuppressions(db: Db): SuppressionList {
  return {
    add: (s) => Promise.resolve(runSqlite(db, suppression(s))),
    remove: (domain, address) => {
      const q = unsuppression(domain, address);
      return Promise.resolve(prepared(db, q.sql).run(...q.args).changes > 0);
    },
    list: (o) => {
      const q = suppressionQuery(o);
      const rows = prepared(db, q.sql).all(...q.args) as unknown as SuppressedRow[];
      return Promise.resolve(rows.map(suppressedRow));
    },
  };
}
