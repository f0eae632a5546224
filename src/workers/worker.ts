/**
 * A worker thread of pool.ts. Each job kind's code is imported on its first
 * job: a thread that only signs never loads the SPF/DMARC/ARC verifier, nor
 * makes a resolver.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { Endpoint } from '../config/endpoint.ts';
import type { SignAnswer, SignRequest } from '../dkim/pool.ts';
import type { VerifyRequest } from '../verify/pool.ts';
import type { BodyFile, Held } from '../message/held.ts';
import { saveCompileCache } from '../compile-cache.ts';

const { servers } = workerData as { servers: Endpoint[] | null };

type Handler = (input: never) => Promise<unknown>;

const handlers: Record<string, () => Promise<Handler>> = {
  async sign() {
    const { signMessage } = await import('../dkim/sign.ts');
    return async (r: SignRequest) => {
      const signatures = await signMessage(held(r.message), r.domain, r.keys, new Date(r.time));
      const body = r.message.body as Uint8Array;
      // a moved body goes back the same way
      if (!r.moved) return { signatures } satisfies SignAnswer;
      return new Moving<SignAnswer>({ signatures, body }, [body.buffer as ArrayBuffer]);
    };
  },
  async verify() {
    const { verifyInbound } = await import('../verify/inbound.ts');
    const { createResolver, offlineResolver } = await import('../dns/resolver.ts');
    const resolver = servers ? createResolver(servers) : offlineResolver();
    return (r: VerifyRequest) =>
      verifyInbound({ ...r, message: held(r.message), resolve: resolver.resolve });
  },
  // the spool's WAL checkpoints (queue/checkpoint.ts), on a connection of this thread's
  async checkpoint() {
    const { DatabaseSync } = await import('node:sqlite');
    const dbs = new Map<string, InstanceType<typeof DatabaseSync>>();
    return (r: { path: string }) => {
      let db = dbs.get(r.path);
      if (!db) {
        dbs.set(r.path, (db = new DatabaseSync(r.path)));
        // a checkpoint copies through a buffer of its own: no page cache wanted
        db.exec('PRAGMA cache_size = 16');
      }
      return Promise.resolve(db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get());
    };
  },
};
/**
 * Structured clone gives Uint8Arrays back as such, already this thread's
 * copy: a Buffer over the same memory, not a second copy. A body in a file
 * stays a path.
 */
function held(m: { head: Uint8Array; body: Uint8Array | BodyFile }): Held {
  const body = m.body instanceof Uint8Array ? view(m.body) : m.body;
  return { head: view(m.head), body };
}

function view(a: Uint8Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.length);
}

/** An answer with ArrayBuffers that move back to the SMTP thread, not copied. */
class Moving<T = unknown> {
  readonly value: T;
  readonly transfer: ArrayBuffer[];
  constructor(value: T, transfer: ArrayBuffer[]) {
    this.value = value;
    this.transfer = transfer;
  }
}

const loaded = new Map<string, Promise<Handler>>();

parentPort?.on('message', (m: { id: number; kind: string; input: never }) => {
  const load = handlers[m.kind];
  if (!load) {
    parentPort?.postMessage({ id: m.id, error: `no such job: ${m.kind}` });
    return;
  }
  let handler = loaded.get(m.kind);
  if (!handler) {
    loaded.set(m.kind, (handler = load()));
    // the next start's threads read this kind's code compiled (compile-cache.ts)
    void handler.then(
      () => saveCompileCache(),
      () => undefined,
    );
  }
  handler
    .then((h) => h(m.input))
    .then(
      (result: unknown) =>
        result instanceof Moving
          ? parentPort?.postMessage({ id: m.id, result: (result as Moving).value }, result.transfer)
          : parentPort?.postMessage({ id: m.id, result }),
      (err: Error) => parentPort?.postMessage({ id: m.id, error: err.message }),
    );
});
