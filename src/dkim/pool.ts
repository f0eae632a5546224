/**
 * DKIM signing on the worker threads of workers/pool.ts: an RSA-2048
 * signature costs most of a millisecond of CPU, which on the SMTP thread
 * would hold up every session. The keys travel as KeyObjects (cloned
 * handles, not PEM parsed again); the header is copied to the thread, a body
 * held in memory (at most 1 MiB) moves there and back when it has an
 * ArrayBuffer of its own (smtp/data.ts gives it one) and is copied otherwise,
 * a body in a file is read there, and the signature fields come back.
 */
import type { WorkerPool } from '../workers/pool.ts';
import type { SigningKey } from './sign.ts';
import type { BodyFile, Held } from '../message/held.ts';

/**
 * Signs `message` with every key of `domain`: the DKIM-Signature lines, each
 * ending in CRLF. Its body may move to another thread and back: afterwards
 * `message.body` holds the same bytes, perhaps in another Buffer.
 */
export type Signer = (
  message: Held,
  domain: string,
  keys: readonly SigningKey[],
  now: Date,
) => Promise<string>;

export interface SignRequest {
  /** A body in a file stays a path: only the header and a small body cross threads. */
  message: { head: Uint8Array; body: Uint8Array | BodyFile };
  /** The body's ArrayBuffer was moved to the thread: it moves back with the answer. */
  moved?: boolean;
  domain: string;
  keys: SigningKey[];
  time: number;
}

export function poolSigner(pool: WorkerPool): Signer {
  return async (message, domain, keys, now) => {
    if (keys.length === 0) return '';
    const { body } = message;
    const moved = Buffer.isBuffer(body) && ownsMemory(body);
    const input: SignRequest = {
      message,
      moved,
      domain,
      keys: keys.map((k) => ({
        selector: k.selector,
        algorithm: k.algorithm,
        privateKey: k.privateKey,
      })),
      time: now.getTime(),
    };
    const r = (await pool.run({
      kind: 'sign',
      input,
      large: !Buffer.isBuffer(body),
      transfer: moved ? [body.buffer as ArrayBuffer] : undefined,
    })) as SignAnswer;
    if (r.body) message.body = Buffer.from(r.body.buffer, r.body.byteOffset, r.body.length);
    return r.signatures;
  };
}

export interface SignAnswer {
  signatures: string;
  /** The body, when it was moved to the thread. */
  body?: Uint8Array;
}

/** The whole of its (not shared) ArrayBuffer: one that can be moved, with nothing else in it. */
function ownsMemory(b: Buffer): boolean {
  return (
    b.buffer instanceof ArrayBuffer &&
    b.length > 0 &&
    b.byteOffset === 0 &&
    b.length === b.buffer.byteLength
  );
}
