/**
 * The fsync of the spool's durable commits, off the event loop.
 *
 * The spool commits with synchronous=NORMAL: in WAL mode COMMIT then appends
 * the transaction's frames to queue.db-wal (into the OS's cache) without
 * waiting for the disk, still atomic and safe from corruption
 * (https://www.sqlite.org/pragma.html#pragma_synchronous). sync() then
 * fdatasync()s that file on libuv's thread pool. A durable write is answered
 * only after a sync that started after its commit returned, so its frames are
 * on disk before the 250, as with synchronous=FULL, but the SMTP sessions run
 * while the disk works. Measured with `npm run bench`: FULL's fsync inside
 * COMMIT held the event loop for about an eighth of its time.
 *
 * Syncs coalesce: while one runs, every commit joins the next one, which
 * starts when it ends; so under load one fdatasync covers many messages.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir } from '../fsutil/atomic.ts';

export class WalSync {
  private readonly path: string;
  private file: FileHandle | null = null;
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  private failed: Error | null = null;

  /** `path`: the WAL file, queue.db-wal. */
  constructor(path: string) {
    this.path = path;
  }

  /** Resolves once everything committed before the call is on disk. */
  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.run().finally(() => {
        this.running = null;
      });
      return this.running;
    }
    // the running sync may have started before the caller's commit: wait for the next
    this.queued ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.queued = null;
        return this.sync();
      });
    return this.queued;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.queued, this.running]);
    const f = this.file;
    this.file = null;
    await f?.close();
  }

  private async run(): Promise<void> {
    // A failed fdatasync may have dropped the pages it did not write (Linux
    // marks them clean): no later sync can vouch for them, so none succeeds.
    if (this.failed) throw this.failed;
    try {
      if (!this.file) {
        // SQLite keeps the WAL file (and its inode) while posta's connection
        // is open, so one handle serves; fdatasync flushes the file whoever
        // wrote it. The folder once, for the WAL's name in it (FULL did that).
        this.file = await open(this.path, 'r');
        await fsyncDir(dirname(this.path));
      }
      await this.file.datasync();
    } catch (err) {
      this.failed = err as Error;
      throw err;
    }
  }
}
