/**
 * DKIM signing on the worker threads of workers/pool.ts: an RSA-2048
 * signature costs most of a millisecond of CPU, which on the SMTP thread
 * would hold up every session. The keys travel as KeyObjects (cloned
 * handles, not PEM parsed again); the message is copied once to the thread,
 * and only the signature fields come back.
 */
import type { WorkerPool } from '../workers/pool.ts';
import type { SigningKey } from './sign.ts';

/** Signs `message` with every key of `domain`: the DKIM-Signature lines, each ending in CRLF. */
export type Signer = (
  message: Buffer,
  domain: string,
  keys: readonly SigningKey[],
  now: Date,
) => Promise<string>;

export interface SignRequest {
  message: Uint8Array;
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
    return (await pool.run({ kind: 'sign', input })) as string;
  };
}
