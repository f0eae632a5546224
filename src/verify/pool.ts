/**
 * Inbound verification off the main thread. Checking and sealing a message
 * costs a few milliseconds of CPU (two RSA signatures for the ARC set), which
 * would otherwise stall every SMTP session while it runs: the worker threads
 * of workers/pool.ts do it, each with its own resolver and DNS cache, and the
 * SMTP thread only waits for the answer.
 *
 * A large message's body stays in its file (message/held.ts): the worker is
 * given the path and reads it as a stream, so no copy of it crosses threads;
 * what comes back is the header only.
 */
import type { WorkerPool } from '../workers/pool.ts';
import type { InboundInput, InboundResult } from './inbound.ts';

export type VerifyRequest = Omit<InboundInput, 'resolve'>;
export type Verifier = (input: VerifyRequest) => Promise<InboundResult>;

export function poolVerifier(pool: WorkerPool): Verifier {
  return async (input) => {
    const r = (await pool.run({
      kind: 'verify',
      input,
      large: !Buffer.isBuffer(input.message.body),
    })) as InboundResult;
    return { ...r, head: Buffer.from(r.head.buffer, r.head.byteOffset, r.head.length) };
  };
}
