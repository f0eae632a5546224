/**
 * Bulk sending (SES v2 SendBulkEmail, v1 SendBulkTemplatedEmail): each
 * entry is its own message through the one send service, and what becomes
 * of it is that entry's status, never the request's: one invalid address
 * among 50 fails one entry. SES takes at most 50 entries a request.
 *
 * The entries are sent concurrently, so that their queue commits share
 * fsyncs; each takes its own quota, so an entry past the key's rate is
 * ACCOUNT_THROTTLED while the others go.
 */
import type { Logger } from '../log/log.ts';
import { ApiError, type ApiErrorKind } from './errors.ts';

export const MAX_BULK_ENTRIES = 50;

export type EntryResult = { messageId: string } | { error: ApiError };

export async function sendEach<T>(
  entries: readonly T[],
  send: (entry: T) => Promise<string>,
  log: Logger,
): Promise<EntryResult[]> {
  return Promise.all(
    entries.map(async (entry): Promise<EntryResult> => {
      try {
        return { messageId: await send(entry) };
      } catch (err) {
        if (err instanceof ApiError) return { error: err };
        log.error({ err: (err as Error).message }, 'API bulk entry failed');
        return { error: new ApiError('unavailable', 'Internal error; try again later.') };
      }
    }),
  );
}

/** SES's BulkEmailStatus for each failure, in v2 (SCREAMING_CASE) and v1 (PascalCase). */
const STATUS: Record<ApiErrorKind, [v2: string, v1: string]> = {
  rejected: ['MESSAGE_REJECTED', 'MessageRejected'],
  'bad-request': ['INVALID_PARAMETER', 'InvalidParameterValue'],
  rate: ['ACCOUNT_THROTTLED', 'AccountThrottled'],
  daily: ['ACCOUNT_DAILY_QUOTA_EXCEEDED', 'AccountDailyQuotaExceeded'],
  'not-found': ['TEMPLATE_NOT_FOUND', 'TemplateDoesNotExist'],
  exists: ['FAILED', 'Failed'],
  unavailable: ['TRANSIENT_FAILURE', 'TransientFailure'],
  auth: ['FAILED', 'Failed'],
  conflict: ['FAILED', 'Failed'],
};

export function bulkStatus(
  r: EntryResult,
  api: 'v2' | 'v1',
): { status: string; error?: string; messageId?: string } {
  if ('messageId' in r)
    return { status: api === 'v2' ? 'SUCCESS' : 'Success', messageId: r.messageId };
  const [v2, v1] = STATUS[r.error.kind];
  return { status: api === 'v2' ? v2 : v1, error: r.error.message };
}
