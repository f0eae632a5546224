/**
 * Idempotency keys of the Resend API
 * (https://resend.com/docs/dashboard/emails/idempotency-keys): a POST whose
 * Idempotency-Key header its access key already sent in the last 24 hours
 * gets the first answer again, and nothing is sent twice.
 *
 * - An idempotency key is 1 to 256 characters (else invalid_idempotency_key).
 * - The same key with another request (method, path and body, by SHA-256)
 *   is refused: 409 invalid_idempotent_request.
 * - While the first request with a key is in progress, another with it is
 *   refused: 409 concurrent_idempotent_requests. Requests in progress are
 *   known in memory: one posta process serves the API.
 * - Only answers of success are kept: a refused request may be sent again
 *   with the same key, and then it is handled anew.
 * - The answer is written as soon as the messages are queued, in a commit
 *   of its own after the queue's: a crash between the two makes a retry
 *   send again (at least once, as delivery is). A power cut may lose it
 *   until the queue's next sync of the same WAL.
 * - Rows older than 24 hours are deleted whenever one is written.
 *
 * Table idempotency (queue.db): key (the access key id), idempotency_key,
 * request (hex SHA-256), response (the JSON body answered), created_at.
 */
import { createHash } from 'node:crypto';
import { prepared, type Db } from '../db/db.ts';
import type { Logger } from '../log/log.ts';
import { ApiError } from './errors.ts';

export const WINDOW_MS = 24 * 60 * 60 * 1000;

export class Idempotency {
  private readonly db: Db;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly inProgress = new Set<string>();
  constructor(db: Db, log: Logger, now: () => number = Date.now) {
    this.db = db;
    this.log = log;
    this.now = now;
  }

  /**
   * The answer `handle` gives, or, for a key and idempotency key seen in
   * the last 24 hours with the same request, the answer it gave then.
   */
  async once(
    o: { key: string; idempotencyKey: string; request: Buffer },
    handle: () => Promise<string>,
  ): Promise<string> {
    const { key, idempotencyKey } = o;
    if (idempotencyKey.length < 1 || idempotencyKey.length > 256) {
      throw new ApiError(
        'bad-request',
        'The Idempotency-Key must be between 1 and 256 characters.',
        'idempotency-key',
      );
    }
    const hash = createHash('sha256').update(o.request).digest('hex');
    const seen = prepared(
      this.db,
      'SELECT request, response FROM idempotency WHERE key = ? AND idempotency_key = ? AND created_at >= ?',
    ).get(key, idempotencyKey, this.now() - WINDOW_MS) as
      { request: string; response: string } | undefined;
    if (seen) {
      if (seen.request !== hash) {
        throw new ApiError(
          'conflict',
          'This Idempotency-Key was used with another request in the last 24 hours; use a new key for a new request.',
          'payload',
        );
      }
      return seen.response;
    }
    const id = `${key}\n${idempotencyKey}`;
    if (this.inProgress.has(id)) {
      throw new ApiError(
        'conflict',
        'A request with this Idempotency-Key is still in progress; try again later.',
        'concurrent',
      );
    }
    this.inProgress.add(id);
    try {
      const response = await handle();
      this.remember(key, idempotencyKey, hash, response);
      return response;
    } finally {
      this.inProgress.delete(id);
    }
  }

  /** What is sent is answered even when it cannot be remembered (a full disk): a retry then sends again. */
  private remember(key: string, idempotencyKey: string, hash: string, response: string): void {
    const now = this.now();
    try {
      prepared(this.db, 'DELETE FROM idempotency WHERE created_at < ?').run(now - WINDOW_MS);
      prepared(
        this.db,
        `INSERT OR REPLACE INTO idempotency (key, idempotency_key, request, response, created_at)
         VALUES (?, ?, ?, ?, ?)`,
      ).run(key, idempotencyKey, hash, response, now);
    } catch (err) {
      this.log.error({ key, err: (err as Error).message }, 'Idempotency-Key answer not stored');
    }
  }
}
