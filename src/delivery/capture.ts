/**
 * The sandbox's transport (`posta dev`): every delivery is written to the
 * capture folder as QUEUEID.eml and counts as delivered, so the whole path
 * (queue, workers, delivery log, `posta queue`) runs and no mail leaves the
 * machine. A message for several domains is written once.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Job, JobResult, Transport } from './transport.ts';

export class CaptureTransport implements Transport {
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  async deliver(job: Job): Promise<JobResult> {
    await mkdir(this.dir, { recursive: true });
    // Written aside and renamed, so a reader of *.eml never sees half a message;
    // the groups of a message for several domains may write at the same time.
    const path = join(this.dir, `${job.queueId}.eml`);
    const aside = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(aside, job.message.open());
    await rename(aside, path);
    const reply = { code: 250, enhanced: '2.0.0', text: `captured in ${this.dir}` };
    return {
      outcomes: new Map(job.recipients.map((r) => [r, { kind: 'delivered', reply }] as const)),
      info: { mx: 'sandbox' },
    };
  }

  close(): void {}
}
