/**
 * Queue ids: time-ordered, unique, safe in file names and logs: 10 base-36
 * characters of the time in milliseconds, then 8 of randomness. What sorts
 * by id sorts by time (events/events.ts prunes by it). The SES APIs return
 * it as the MessageId.
 */
import { randomBytes } from 'node:crypto';

export function newQueueId(now = Date.now()): string {
  return now.toString(36).padStart(10, '0') + randomBytes(5).toString('hex').slice(0, 8);
}
