/**
 * The hashing gate: at most `slots` password hashes run at once, at most
 * `queue` more wait for a slot, and past that `run` refuses at once with
 * HashBusy. Each argon2id hash takes its memory (19 MiB) for its whole run,
 * so this bounds what an AUTH flood can make the server hold, whatever the
 * number of connections; the refusals become 454 4.7.0 at the SMTP boundary.
 * (glibc keeps the 19 MiB a libuv thread freed in that thread's arena, so the
 * peak is about libuv's 4 threads x 19 MiB: +81 MB under 40 parallel logins in
 * test/security/auth.test.ts, against +516 MB with scrypt and no gate.)
 * A heavy hash (the scrypt at 128 MiB of hashes from before argon2id) also
 * waits for a single heavy slot, so at most one of those runs at a time.
 */
import { availableParallelism } from 'node:os';

export class HashBusy extends Error {
  constructor() {
    super('Too many password checks waiting');
  }
}

/** One slot per core, two to four: hashing is CPU-bound, more at once only costs memory. */
export function defaultSlots(): number {
  return Math.min(4, Math.max(2, availableParallelism()));
}

export class HashGate {
  private readonly slots: number;
  private readonly queue: number;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly heavy: HashGate | null;

  constructor(opts: { slots?: number; queue?: number } = {}) {
    this.slots = opts.slots ?? defaultSlots();
    this.queue = opts.queue ?? 32;
    this.heavy = this.slots > 1 ? new HashGate({ slots: 1, queue: this.queue }) : null;
  }

  async run<T>(fn: () => Promise<T>, opts: { heavy?: boolean } = {}): Promise<T> {
    const heavy = this.heavy;
    // A heavy one waits for its own slot first, holding none of the others meanwhile.
    return opts.heavy && heavy ? heavy.run(() => this.enter(fn)) : this.enter(fn);
  }

  private async enter<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= this.slots) {
      if (this.waiting.length >= this.queue) throw new HashBusy();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter, or give it back.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
