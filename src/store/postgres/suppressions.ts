/**
 * The suppression lists in the shared database (suppression/suppression.ts
 * SuppressionList): the same statements as on SQLite, each its own
 * transaction, committed durably, so an address added on one node is never
 * sent to by any.
 */
import type { Pool } from 'pg';
import {
  suppression,
  suppressedRow,
  suppressionQuery,
  unsuppression,
  type SuppressedRow,
  type SuppressionList,
} from '../../suppression/suppression.ts';
import { runPg, type Statement } from '../statement.ts';

export function pgSuppressions(pool: Pool): SuppressionList {
  const run = (q: Statement) => runPg<SuppressedRow>(pool, q);
  return {
    add: async (s) => {
      await run(suppression(s));
    },
    remove: async (domain, address) =>
      ((await run(unsuppression(domain, address))).rowCount ?? 0) > 0,
    list: async (o) => (await run(suppressionQuery(o))).rows.map(suppressedRow),
  };
}
