/**
 * Inbound verification off the main thread. Checking and sealing a message
 * costs a few milliseconds of CPU (two RSA signatures for the ARC set), which
 * would otherwise stall every SMTP session while it runs: worker threads do
 * it, each with its own resolver and DNS cache, and the SMTP thread only
 * waits for the answer.
 *
 * A large message's body stays in its file (message/held.ts): the worker is
 * given the path and reads it as a stream, so no copy of it crosses threads;
 * what comes back is the header only.
 *
 * A worker that dies fails the checks it was running (the client gets a 451
 * and tries again) and is replaced.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Endpoint } from '../config/endpoint.ts';
import type { InboundInput, InboundResult } from './inbound.ts';

export type VerifyRequest = Omit<InboundInput, 'resolve'>;
export type Verifier = (input: VerifyRequest) => Promise<InboundResult>;

interface Pending {
  resolve: (r: InboundResult) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

export interface WorkerSetup {
  /** DNS servers as [dns] servers has them; null: the sandbox, no DNS at all. */
  servers: readonly Endpoint[] | null;
}

export class VerifierPool {
  private readonly slots: Slot[] = [];
  private readonly setup: WorkerSetup;
  private next = 0;
  private closed = false;

  constructor(setup: WorkerSetup, size = Math.min(4, Math.max(1, availableParallelism() - 1))) {
    this.setup = setup;
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  readonly verify: Verifier = (input) => {
    const slot = this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.next++;
    return new Promise<InboundResult>((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      slot.worker.postMessage({ id, input });
    });
  };

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      workerData: { servers: this.setup.servers },
      resourceLimits: { maxYoungGenerationSizeMb: 8 },
    });
    const slot: Slot = { worker, pending: new Map() };
    worker.on('message', (m: { id: number; result?: InboundResult; error?: string }) => {
      const p = slot.pending.get(m.id);
      slot.pending.delete(m.id);
      if (!p) return;
      if (m.result) {
        const r = m.result;
        p.resolve({
          ...r,
          head: Buffer.from(r.head.buffer, r.head.byteOffset, r.head.length),
        });
      } else {
        p.reject(new Error(m.error ?? 'verification failed'));
      }
    });
    const died = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      if (this.closed) return;
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots[i] = this.spawn();
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`verification worker exited with ${code}`)));
    worker.unref();
    return slot;
  }
}
