/**
 * DKIM signing on the worker threads of workers/pool.ts: an RSA-2048
 * signature costs most of a millisecond of CPU, which on the SMTP thread
 * would hold up every session. The keys travel as KeyObjects (cloned
 * handles, not PEM parsed again); the header (and a body held in memory, at most
 * 1 MiB) is copied once to the thread, a body in a file is read there, and only the signature fields come back.
 */
import type { WorkerPool } from '../workers/pool.ts';
import type { SigningKey } from './sign.ts';
import type { BodyFile, Held } from '../message/held.ts';

/** Signs `message` with every key of `domain`: the DKIM-Signature lines, each ending in CRLF. */
export type Signer = (
  message: Held,
  domain: string,
  keys: readonly SigningKey[],
  now: Date,
) => Promise<string>;

export interface SignRequest {
  /** A body in a file stays a path: only the header and a small body cross threads. */
  message: { head: Uint8Array; body: Uint8Array | BodyFile };
  domain: string;
  keys: SigningKey[];
  time: number;
}

export function poolSigner(pool: WorkerPool): Signer {
  return async (message, domain, keys, now) => {
    if (keys.length === 0) return '';
    const input: SignRequest = {
      message,
      domain,
      keys: keys.map((k) => ({
        selector: k.selector,
        algorithm: k.algorithm,
        privateKey: k.privateKey,
      })),
      time: now.getTime(),
    };
    return (await pool.run({
      kind: 'sign',
      input,
      large: !Buffer.isBuffer(input.message.body),
    })) as string;
  };
}
