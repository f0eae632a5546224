/**
 * A write as data: one SQL statement and its arguments, which either engine
 * runs in its own transaction (SQLite through node:sqlite, PostgreSQL through
 * pg). A module that owns a table says what to write with a Statement, and
 * the store that holds the transaction runs it, so the same text is tested
 * on both engines.
 *
 * The text is in the dialect the two share:
 * - `?` placeholders, in order (PostgreSQL's $1, $2, ... are made here);
 * - `INSERT ... ON CONFLICT (...) DO UPDATE SET c = t.c + excluded.c` or
 *   `DO NOTHING`, never SQLite's `INSERT OR IGNORE` / `OR REPLACE`;
 *   in DO UPDATE, columns of the existing row are qualified by the table's
 *   name (PostgreSQL finds an unqualified one ambiguous);
 * - no json_each, INDEXED BY, or other functions of one engine only;
 * - arguments are strings, numbers (times in ms: BIGINT on PostgreSQL),
 *   null, or bytes.
 */
import type { Pool, PoolClient, QueryResult, QueryResultRow } from 'pg';
import { prepared, type Db } from '../db/db.ts';

export type SqlArg = string | number | bigint | null | Uint8Array;

export interface Statement {
  readonly sql: string;
  readonly args: readonly SqlArg[];
  /**
   * An increment of a counter row many transactions share (the charts'
   * counts, key quotas, warm-up counts): on PostgreSQL a batch runs these
   * last and sorted (postgres/commit.ts), so that nodes bumping the same rows
   * take their locks in one order and never deadlock.
   */
  readonly counter?: true;
}

export function statement(sql: string, ...args: SqlArg[]): Statement {
  return { sql, args };
}

/** A Statement that bumps a shared counter row (Statement.counter). */
export function counterStatement(sql: string, ...args: SqlArg[]): Statement {
  return { sql, args, counter: true };
}

/** Runs it on SQLite, its prepared form kept per connection (db/db.ts prepared). */
export function runSqlite(db: Db, s: Statement): void {
  prepared(db, s.sql).run(...s.args);
}

/** Runs it on PostgreSQL, on the pool or on a connection in a transaction. */
export function runPg<R extends QueryResultRow = QueryResultRow>(
  c: Pool | PoolClient,
  s: Statement,
): Promise<QueryResult<R>> {
  return c.query<R>(pgText(s.sql), s.args as unknown[]);
}

const pgTexts = new Map<string, string>();

/** The statement's text with PostgreSQL's numbered placeholders. */
export function pgText(sql: string): string {
  let text = pgTexts.get(sql);
  if (text === undefined) {
    let n = 0;
    // no statement here has a `?` inside a string literal
    text = sql.replace(/\?/g, () => `$${++n}`);
    pgTexts.set(sql, text);
  }
  return text;
}
