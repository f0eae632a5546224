/**
 * Message bodies on PostgreSQL: a small body in messages.data (bytea), a
 * large one (a Held with its body in a file, message/held.ts) as rows of
 * PART_SIZE bytes in message_parts, as the spool keeps them.
 *
 * Invariants:
 * - The parts are written before the message row, one statement (and
 *   commit, synchronous_commit off) per part, read from the file into one
 *   buffer between them: never the whole body in memory. The message row's
 *   durable commit flushes the WAL up to it, and so the parts with it.
 * - Parts without a message row (a crash, a refused commit) are removed on
 *   the error path, or by sweepParts() once they are older than any write
 *   in progress could be: other nodes may be writing theirs right now.
 * - Read back one part per query, only when the stream asks for it.
 */
import { Readable } from 'node:stream';
import type { Pool } from 'pg';
import { inParts, type BodyFile, type Held } from '../../message/held.ts';
import { headerBlock } from '../../message/header.ts';
import { PART_SIZE, type StoredMessage } from '../../queue/spool.ts';
import { transaction } from './commit.ts';

/** Writes the parts of a message whose body is in a file; on an error none stays. */
export async function writeParts(
  pool: Pool,
  id: string,
  m: Held,
  body: BodyFile,
): Promise<{ parts: number; size: number }> {
  const add = (seq: number, data: Buffer) =>
    transaction(pool, false, (c) =>
      c.query('INSERT INTO message_parts (message, seq, data) VALUES ($1, $2, $3)', [
        id,
        seq,
        data,
      ]),
    );
  let parts = 0;
  try {
    for await (const part of inParts(m, body, PART_SIZE)) await add(parts++, part);
  } catch (err) {
    await dropParts(pool, id).catch(() => {});
    throw err;
  }
  return { parts, size: m.head.length + body.size };
}

export async function dropParts(pool: Pool, id: string): Promise<void> {
  await pool.query('DELETE FROM message_parts WHERE message = $1', [id]);
}

/** Parts without a message, older than `olderThanMs`: a crash's leftovers. */
export async function sweepParts(pool: Pool, olderThanMs: number): Promise<number> {
  const r = await pool.query(
    `DELETE FROM message_parts p
      WHERE p.written_at < now() - make_interval(secs => $1::double precision / 1000)
        AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = p.message)`,
    [olderThanMs],
  );
  return r.rowCount ?? 0;
}

/** A queued message read back, as the spool's storedMessage() gives it. */
export async function storedMessage(pool: Pool, id: string): Promise<StoredMessage | null> {
  const { rows } = await pool.query<{ data: Buffer; parts: number; size: string }>(
    'SELECT data, parts, size FROM messages WHERE id = $1',
    [id],
  );
  const row = rows[0];
  if (!row) return null;
  if (row.parts === 0) {
    const data = row.data;
    return { size: data.length, head: headOf(data), open: () => Readable.from([data]) };
  }
  const read = async (seq: number): Promise<Buffer> => {
    const r = await pool.query<{ data: Buffer }>(
      'SELECT data FROM message_parts WHERE message = $1 AND seq = $2',
      [id, seq],
    );
    const p = r.rows[0];
    if (!p) throw new Error(`part ${seq} of message ${id} is missing (deleted meanwhile?)`);
    return p.data;
  };
  const parts = row.parts;
  // the header is in the first part: at most [limits] header_size, well under PART_SIZE
  const head = Buffer.from(headOf(await read(0)));
  return {
    size: Number(row.size),
    head,
    open: () =>
      Readable.from(
        (async function* () {
          for (let seq = 0; seq < parts; seq++) yield await read(seq);
        })(),
        { highWaterMark: 1 },
      ),
  };
}

/** The header section with its empty line (message/held.ts has it so). */
function headOf(data: Buffer): Buffer {
  const block = headerBlock(data);
  return block.length === data.length ? block : data.subarray(0, block.length + 2);
}
