/**
 * The spool's WAL checkpoints, off the SMTP event loop.
 *
 * In WAL mode SQLite copies committed pages back into queue.db in a
 * checkpoint, which by default the committing connection runs inside COMMIT
 * once the WAL holds 1,000 pages: on the SMTP event loop, with an fsync of
 * the WAL and one of the database. Under load it is worse than one stall per
 * 4 MB: a checkpoint that a reader's snapshot keeps from finishing is tried
 * again after every commit.
 *
 * So the server's spool connection never checkpoints (wal_autocheckpoint = 0)
 * and a worker thread of the pool (workers/pool.ts), with a connection of its
 * own, runs PASSIVE checkpoints: they take no lock a writer needs, so commits
 * go on meanwhile. A thread of the pool rather than one of its own: a thread
 * costs about 18 MiB of PSS, and under load the pool's threads run anyway.
 * The spool nudges this after each commit; a checkpoint runs at most once per
 * INTERVAL_MS, one at a time, and a nudge inside the interval is kept for its
 * end, so the last commits of a burst are checkpointed too.
 *
 * A checkpoint that runs beside commits never copies the frames they add
 * meanwhile, and SQLite starts the WAL over only once every frame is copied:
 * under sustained load the WAL would grow without end (measured: 130 MB after
 * 15 s of 100 KB messages). So once the WAL file is larger than HOLD_BYTES
 * the spool's commits wait (`held`) for the running checkpoint and one more
 * with nothing written beside it; the next commit starts the WAL over, and
 * SQLite cuts the file back to HOLD_BYTES (journal_size_limit), so its size
 * says when to hold again. The sessions go on meanwhile; only their 250s
 * wait. Where the disk copies slower than mail comes, that is the back
 * pressure that keeps the WAL bounded.
 *
 * Durability is SQLite's and unchanged: a checkpoint syncs the WAL before it
 * copies and the database before it marks the frames copied, and only then
 * may the writer start the WAL over (wal-sync.ts syncs what it writes then).
 */

const INTERVAL_MS = 250;

/** Past this size the WAL's next checkpoint holds commits so it can start over; and kept at most. */
export const HOLD_BYTES = 32 * 1024 * 1024;

/** What PRAGMA wal_checkpoint answers: frames in the WAL and frames copied into the database. */
export interface CheckpointResult {
  log: number;
  checkpointed: number;
}

export interface CheckpointRunner {
  /** Runs one PASSIVE checkpoint of the database at `path` elsewhere than this thread. */
  run(path: string): Promise<CheckpointResult>;
  /** Hears each new failure once: the WAL grows until a checkpoint succeeds. */
  onError(message: string): void;
}

export class Checkpointer {
  private readonly path: string;
  private readonly runner: CheckpointRunner;
  private running: Promise<void> | null = null;
  private wanted = false;
  private lastEnd = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private lastError = '';

  /** While set, commits wait for it: the checkpoint that lets the WAL start over. */
  held: Promise<void> | null = null;

  /** `path`: queue.db. */
  constructor(path: string, runner: CheckpointRunner) {
    this.path = path;
    this.runner = runner;
  }

  /** Something was committed and the WAL file is `walBytes` long: checkpoint it soon. */
  nudge(walBytes: number): void {
    if (this.closed) return;
    if (walBytes > HOLD_BYTES) return this.hold();
    this.wanted = true;
    if (this.running || this.timer) return;
    const wait = this.lastEnd + INTERVAL_MS - Date.now();
    if (wait <= 0) return this.start();
    this.timer = setTimeout(() => {
      this.timer = null;
      this.start();
    }, wait);
    this.timer.unref();
  }

  /** Starts no more checkpoints and waits for a running one. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopTimer();
    await this.held;
    await this.running;
  }

  private hold(): void {
    if (this.held) return;
    const held = async () => {
      await this.running;
      this.stopTimer();
      this.start();
      await this.running;
    };
    this.held = held().finally(() => {
      this.held = null;
    });
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private start(): void {
    if (this.closed || this.running) return;
    this.wanted = false;
    // a runner that throws (a thread that cannot start) fails this checkpoint, not the commit
    this.running = Promise.resolve()
      .then(() => this.runner.run(this.path))
      .then(
        () => this.done(''),
        (err: Error) => this.done(err.message),
      );
  }

  private done(error: string): void {
    this.running = null;
    this.lastEnd = Date.now();
    if (error && error !== this.lastError) this.runner.onError(error);
    this.lastError = error;
    if (this.wanted) this.nudge(0);
  }
}
