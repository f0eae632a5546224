/**
 * The worker threads that do posta's CPU-heavy steps off the SMTP event loop:
 * DKIM signing of submitted mail, the inbound checks with the ARC seal, and
 * the queue's WAL checkpoints (worker.ts runs all three). One pool for both, one thread fewer than the cores
 * (the SMTP thread keeps one busy under load; at least one), and started
 * lazily: a thread is spawned only when every running one is busy, so an idle
 * server, or one whose port 25 takes no mail, pays for no threads, and a
 * worker loads the code of a job kind only when it first gets one.
 *
 * A job goes to the least busy thread. Jobs on a large message (its body in
 * a file, message/held.ts) run one at a time per kind: each streams tens of
 * MB through a thread's heap, and measured with four 45 MB bodies at once,
 * two threads doing it together peaked 120 MB above one doing them in turn.
 * One waits at most LARGE_WAIT_MS for its turn (a check may wait on slow DNS
 * meanwhile), then fails: the client gets a 451 and tries again.
 * A thread that dies fails the jobs it
 * was running (the SMTP client gets a 451 and tries again) and is replaced on
 * demand.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Endpoint } from '../config/endpoint.ts';

const LARGE_WAIT_MS = 60_000;
const ignore = (): void => undefined;

export interface WorkerSetup {
  /** DNS servers as [dns] servers has them; null: the sandbox, no DNS at all. */
  servers: readonly Endpoint[] | null;
}

/** A job and its answer, by kind; worker.ts has the other half. */
export interface Job {
  kind: 'sign' | 'verify' | 'checkpoint';
  input: unknown;
  /** The message's body is in a file: run it after the other large jobs. */
  large?: boolean;
  /** Moved to the thread, not copied: the caller leaves them alone (the answer may move them back). */
  transfer?: ArrayBuffer[];
}

interface Pending {
  resolve: (r: unknown) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly setup: WorkerSetup;
  private readonly size: number;
  private next = 0;
  private closed = false;

  constructor(setup: WorkerSetup, size = availableParallelism() - 1) {
    this.setup = setup;
    this.size = Math.max(1, size);
  }

  /** Per kind, the end of the last large job queued. */
  private readonly large = new Map<Job['kind'], Promise<void>>();

  run(job: Job): Promise<unknown> {
    if (!job.large) return this.start(job);
    const prev = this.large.get(job.kind) ?? Promise.resolve();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), LARGE_WAIT_MS);
      timer.unref();
    });
    const done = Promise.race([prev, late]).then((turn) => {
      clearTimeout(timer);
      if (turn === 'late') throw new Error('too many large messages are being handled');
      return this.start(job);
    });
    // the next one waits for this one and for those before it, run or not
    const settled = (): Promise<void> => done.then(ignore, ignore);
    this.large.set(job.kind, prev.then(settled, settled));
    return done;
  }

  private start(job: Job): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the worker pool is closed'));
    let slot = this.slots.find((s) => s.pending.size === 0);
    if (!slot && this.slots.length < this.size) slot = this.spawn();
    slot ??= this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
    const id = this.next++;
    const { pending, worker } = slot;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, kind: job.kind, input: job.input }, job.transfer ?? []);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./worker.ts', import.meta.url), {
      workerData: { servers: this.setup.servers },
      // measured: a small young generation lowers the peak under 45 MB bodies
      resourceLimits: { maxYoungGenerationSizeMb: 2 },
    });
    const slot: Slot = { worker, pending: new Map() };
    this.slots.push(slot);
    worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const p = slot.pending.get(m.id);
      slot.pending.delete(m.id);
      if (!p) return;
      if (m.error === undefined) p.resolve(m.result);
      else p.reject(new Error(m.error));
    });
    const died = (err: Error) => {
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
    };
    worker.on('error', died);
    worker.on('exit', (code) => died(new Error(`worker thread exited with ${code}`)));
    worker.unref();
    return slot;
  }
}
