/**
 * The unsubscribe links posta has given out: token (token.ts) -> the
 * sending domain, the recipient, and the last message that carried it (the
 * one a Subscription event is about). A row is written in the commit that
 * queues a message with the link (queue/spool.ts, Envelope.unsubscribe), so
 * no accepted message carries a link posta does not know, and a refused one
 * leaves none. One row per
 * (domain, recipient), kept for good,
 * as the suppression list is: a link in an old message still works.
 *
 * Table unsubscribe_links (queue.db): token, domain, address, message, created_at.
 */
import { statement, type Statement } from '../store/statement.ts';
import { prepared, type Db } from '../db/db.ts';

export interface Link {
  token: string;
  domain: string;
  address: string;
  message: string;
}

/** A link as a message to be queued carries it: the message is its queue id. */
export type NewLink = Omit<Link, 'message'>;

export function linkInsert(l: Link, now = Date.now()): Statement {
  return statement(
    `INSERT INTO unsubscribe_links (token, domain, address, message, created_at)
     VALUES (?, ?, ?, ?, ?)
     ON CONFLICT (token) DO UPDATE SET message = excluded.message`,
    l.token.toLowerCase(),
    l.domain,
    l.address.toLowerCase(),
    l.message,
    now,
  );
}

/** The row of a token (any case), on either engine; linkOf() reads it. */
export function linkQuery(token: string): Statement {
  return statement(
    'SELECT token, domain, address, message FROM unsubscribe_links WHERE token = ?',
    token.toLowerCase(),
  );
}

export function linkOf(r: Link | undefined): Link | undefined {
  return r && { token: r.token, domain: r.domain, address: r.address, message: r.message };
}

/** The link of a token (any case), or undefined when posta never gave it. */
export function findLink(db: Db, token: string): Link | undefined {
  const q = linkQuery(token);
  return linkOf(prepared(db, q.sql).get(...q.args) as Link | undefined);
}
