/**
 * The DATA reader: the bytes of a message as they arrive, checked on the
 * stream and held with bounded memory.
 *
 * - A bare CR or LF, or a NUL byte, anywhere refuses the message (RFC 5321
 *   §2.3.8, §4.1.4): every SMTP smuggling variant (`\n.\n`, `\r.\r`,
 *   `\r\n\0.\r\n`, ...) is a plain rejected message, not a hidden second one.
 * - A line over 998 octets refuses it (RFC 5322 §2.1.1, message/lines.ts).
 * - A header section over [limits] header_size refuses it with 552 5.3.4 as
 *   soon as the limit is passed: nothing more of it is kept.
 * - Past [limits] message_size nothing more is kept either (552, RFC 1870 §6.3).
 * - A message up to SPOOL_THRESHOLD stays in memory; past it, the bytes go
 *   to a temporary file in the data folder's `incoming/` as they arrive, and
 *   only the header section stays in memory (message/held.ts). No fsync:
 *   the spool makes the message durable, this file only carries it there.
 * - Bytes held in memory count against one budget for all sessions,
 *   [limits] data_memory: a DATA that finds it spent gets 452 4.3.1 and its
 *   bytes are read and dropped; one that runs into it goes to a file early.
 *
 * The checks decide while the bytes arrive; SMTP lets the server answer
 * only after the final dot (RFC 5321 §4.1.1.4), so the reply comes then.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { LineLengths, bareLineEnding, longLineText } from '../message/lines.ts';
import type { Held } from '../message/held.ts';
import {
  C452Busy,
  C550LineTooLong,
  C552TooBig,
  C554BareLineEnding,
  type SmtpReply,
} from './reply.ts';

/** A message larger than this goes to a temporary file while it arrives. */
export const SPOOL_THRESHOLD = 1024 * 1024;

/** Bytes of messages held in memory by all sessions together, against a limit. */
export class MemoryBudget {
  readonly total: number;
  used = 0;

  constructor(total: number) {
    this.total = total;
  }

  take(n: number): boolean {
    if (this.used + n > this.total) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

export interface DataLimits {
  messageSize: number;
  headerSize: number;
  budget: MemoryBudget;
  /** Folder for the temporary files (incomingDir). */
  incoming: string;
}

export interface DataResult {
  held: Held;
  /** Why the message is refused; null when it may go on. */
  refuse: SmtpReply | null;
  /** Gives the memory back and removes the temporary file: call it when done. */
  release(): Promise<void>;
}

/** The temporary files' folder in the data folder. */
export function incomingDir(dataDir: string): string {
  return join(dataDir, 'incoming');
}

/** At start: files left by a process that died mid-DATA are removed. */
export function clearIncoming(dataDir: string): void {
  const dir = incomingDir(dataDir);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

export async function readData(stream: Readable, o: DataLimits): Promise<DataResult> {
  const r = new Reader(o);
  try {
    for await (const c of stream) await r.add(c as Buffer);
    return await r.finish();
  } catch (err) {
    // what went wrong first is what the caller hears (a client gone is ECONNECTION)
    await r.release().catch(() => {});
    throw err;
  }
}

class Reader {
  private readonly o: DataLimits;
  private readonly lengths = new LineLengths();
  private problem: string | null = null;
  private prev = 10; // as if after a line end
  private size = 0;
  /** Offset just past the header section's empty line, once seen. */
  private headEnd = -1;
  private last3 = Buffer.alloc(0);
  private chunks: Buffer[] = [];
  private taken = 0;
  private head: Buffer | null = null;
  private file: { path: string; out: WriteStream; error: Error | null } | null = null;
  private refused: 'size' | 'header' | 'busy' | null = null;

  constructor(o: DataLimits) {
    this.o = o;
    if (o.budget.used >= o.budget.total) this.refused = 'busy';
  }

  async add(chunk: Buffer): Promise<void> {
    if (!this.problem) this.problem = lineProblem(chunk, this.prev);
    if (chunk.length) this.prev = chunk[chunk.length - 1] ?? this.prev;
    this.lengths.feed(chunk);
    const offset = this.size;
    this.size += chunk.length;
    if (this.headEnd < 0) {
      const around = Buffer.concat([this.last3, chunk]);
      const i = around.indexOf('\r\n\r\n');
      if (i >= 0) this.headEnd = offset - this.last3.length + i + 4;
      else this.last3 = around.subarray(Math.max(0, around.length - 3));
      if (this.headEnd < 0 ? this.size > this.o.headerSize : this.headEnd > this.o.headerSize) {
        this.refuse('header');
      }
    }
    if (this.size > this.o.messageSize) this.refuse('size');
    if (this.refused) return;
    if (this.file) return this.write(chunk);
    if (!this.o.budget.take(chunk.length)) {
      // The budget is spent: to a file at once, or, without a header yet, busy.
      if (this.headEnd < 0) return this.refuse('busy');
      this.chunks.push(chunk);
      return this.spill();
    }
    this.taken += chunk.length;
    this.chunks.push(chunk);
    if (this.size > SPOOL_THRESHOLD && this.headEnd >= 0) await this.spill();
  }

  async finish(): Promise<DataResult> {
    if (!this.problem && this.prev === 13) this.problem = 'The message ends in a bare CR';
    const refuse = this.reply();
    let held: Held;
    if (this.file && !refuse) {
      const { out } = this.file;
      failed(this.file);
      out.end();
      if (!out.closed) await once(out, 'close');
      failed(this.file);
      const head = this.head ?? Buffer.alloc(0);
      held = {
        head,
        body: { path: this.file.path, start: head.length, size: this.size - head.length },
      };
    } else {
      held = this.apart();
      this.chunks = [];
    }
    return { held, refuse, release: () => this.release() };
  }

  /**
   * The chunks as split() has them joined, the body in an ArrayBuffer of its
   * own: it moves to the worker thread that signs it and back, uncopied
   * (dkim/pool.ts).
   */
  private apart(): Held {
    const size = this.chunks.reduce((n, c) => n + c.length, 0);
    // (a refused message keeps no chunks: then nothing)
    const headLength = this.headEnd < 0 ? size : Math.min(this.headEnd, size);
    const head = Buffer.allocUnsafe(headLength);
    const body = Buffer.allocUnsafeSlow(size - headLength);
    let at = 0;
    for (const c of this.chunks) {
      const inHead = Math.max(0, Math.min(c.length, headLength - at));
      if (inHead > 0) c.copy(head, at, 0, inHead);
      if (inHead < c.length) c.copy(body, at + inHead - headLength, inHead);
      at += c.length;
    }
    return { head, body };
  }

  async release(): Promise<void> {
    this.o.budget.give(this.taken);
    this.taken = 0;
    this.chunks = [];
    const f = this.file;
    this.file = null;
    if (!f) return;
    try {
      if (!f.out.closed) {
        // 'close' alone: destroying a stream with writes in flight may also
        // emit an error (ERR_STREAM_DESTROYED), which must not stop the removal
        const closed = new Promise<void>((resolve) => f.out.once('close', () => resolve()));
        f.out.destroy();
        await closed;
      }
    } finally {
      await rm(f.path, { force: true });
    }
  }

  private reply(): SmtpReply | null {
    if (this.refused === 'size' || this.size > this.o.messageSize) {
      return C552TooBig(`Message exceeds the size limit of ${this.o.messageSize} bytes`);
    }
    if (this.refused === 'header') {
      return C552TooBig(`The header section exceeds ${this.o.headerSize} bytes`);
    }
    if (this.refused === 'busy') return C452Busy('The server is busy; try again later');
    if (this.problem) return C554BareLineEnding(this.problem);
    const long = this.lengths.result();
    return long ? C550LineTooLong(longLineText(long)) : null;
  }

  /** Nothing more is kept; what was is given back. */
  private refuse(why: 'size' | 'header' | 'busy'): void {
    this.refused ??= why;
    this.chunks = [];
    this.o.budget.give(this.taken);
    this.taken = 0;
  }

  /** From now on the message goes to a file; only its header stays in memory. */
  private async spill(): Promise<void> {
    const all = Buffer.concat(this.chunks);
    this.chunks = [];
    this.head = Buffer.from(all.subarray(0, this.headEnd));
    this.o.budget.give(this.taken);
    this.taken = 0;
    if (this.o.budget.take(this.head.length)) this.taken = this.head.length;
    const path = join(this.o.incoming, `${randomBytes(9).toString('base64url')}.tmp`);
    const out = createWriteStream(path, { mode: 0o600, flags: 'wx' });
    this.file = { path, out, error: null };
    const file = this.file;
    out.on('error', (err) => (file.error = err));
    await this.write(all);
  }

  private async write(chunk: Buffer): Promise<void> {
    const f = this.file;
    if (!f) return;
    failed(f);
    if (!f.out.write(chunk)) {
      // one drain or close, and no listener left behind for the one that did not come
      await new Promise<void>((resolve) => {
        const done = () => {
          f.out.off('drain', done);
          f.out.off('close', done);
          resolve();
        };
        f.out.on('drain', done);
        f.out.on('close', done);
      });
      failed(f);
    }
  }
}

/** Throws the temporary file's write error (ENOSPC, say), if there was one. */
function failed(f: { error: Error | null }): void {
  if (f.error) throw f.error;
}

/** The first bare CR, bare LF or NUL in `chunk`, `prev` being the byte before it. */
function lineProblem(chunk: Buffer, prev: number): string | null {
  if (chunk.indexOf(0) >= 0) return 'The message contains a NUL byte, which SMTP does not allow';
  const bare = bareLineEnding(chunk, prev);
  if (bare === 'LF') {
    return 'The message contains a bare LF; lines must end with CRLF (RFC 5321 section 2.3.8)';
  }
  // a CR that ended the chunk before must be followed by this one's LF
  if (bare === 'CR' || (prev === 13 && chunk[0] !== 10)) {
    return 'The message contains a bare CR; lines must end with CRLF (RFC 5321 section 2.3.8)';
  }
  return null;
}
