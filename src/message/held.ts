/**
 * A message while posta works on it, between DATA and the spool: the header
 * section in memory (it is small: [limits] header_size), the body either in
 * memory or, for a large message, in a temporary file that the DATA reader
 * wrote while it arrived (smtp/data.ts). Stamping, signing, verifying and
 * the spool read the body as a stream, so a large message is never held
 * whole in memory.
 *
 * `head` is the header section with the empty line that ends it (RFC 5322
 * §2.1), "\r\n\r\n" included; a message without an empty line is all head.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** A body in a file: `size` bytes from offset `start`. */
export interface BodyFile {
  path: string;
  start: number;
  size: number;
}

export interface Held {
  head: Buffer;
  body: Buffer | BodyFile;
}

/** Splits a message in memory at the end of its header section. */
export function split(data: Buffer): Held {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return { head: data, body: Buffer.alloc(0) };
  return { head: data.subarray(0, end + 4), body: data.subarray(end + 4) };
}

export function bodySize(m: Held): number {
  return Buffer.isBuffer(m.body) ? m.body.length : m.body.size;
}

export function heldSize(m: Held): number {
  return m.head.length + bodySize(m);
}

/** The body as a stream of chunks (64 KiB from a file: little garbage at a time). */
export function bodyStream(m: Held): Readable {
  if (Buffer.isBuffer(m.body)) return Readable.from([m.body]);
  const { path, start, size } = m.body;
  if (size === 0) return Readable.from([]);
  return createReadStream(path, { start, end: start + size - 1 });
}

/** The whole message, head then body, as a stream. */
export function messageStream(m: Held): Readable {
  return Readable.from(
    (async function* () {
      yield m.head;
      for await (const c of bodyStream(m)) yield c as Buffer;
    })(),
  );
}

/** The whole message in one Buffer: only for a body in memory (a small message). */
export function joined(m: Held): Buffer | null {
  return Buffer.isBuffer(m.body) ? Buffer.concat([m.head, m.body]) : null;
}

/**
 * The whole message, its head and then its body read from the file, in parts
 * of `size` bytes (the last one shorter), each in one reused buffer so that a
 * large message makes no garbage per part: use a part before asking for the
 * next. Throws when the file is shorter than the body.
 */
export async function* inParts(m: Held, body: BodyFile, size: number): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let fill = 0;
  for (let off = 0; off < m.head.length;) {
    const n = m.head.copy(buf, fill, off);
    fill += n;
    off += n;
    if (fill === size) {
      yield buf;
      fill = 0;
    }
  }
  const file = await open(body.path, 'r');
  try {
    for (let pos = body.start, left = body.size; left > 0;) {
      const { bytesRead } = await file.read(buf, fill, Math.min(size - fill, left), pos);
      if (bytesRead === 0) throw new Error(`${body.path} is shorter than the message`);
      fill += bytesRead;
      pos += bytesRead;
      left -= bytesRead;
      if (fill === size) {
        yield buf;
        fill = 0;
      }
    }
  } finally {
    await file.close();
  }
  if (fill > 0) yield buf.subarray(0, fill);
}
