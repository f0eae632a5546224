/**
 * A transport takes one message to the recipients of one domain and says what
 * happened to each. The real one talks SMTP to MX hosts (mx.ts); the sandbox's
 * keeps a copy on disk (capture.ts).
 */
import type { AttemptInfo, Outcome } from './outcome.ts';
import type { StoredMessage } from '../queue/spool.ts';
import type { Slot } from '../store/limits.ts';

export interface Job {
  queueId: string;
  sender: string;
  /** The recipient domain (A-label, lower case). */
  domain: string;
  recipients: string[];
  /** Read back from the spool as a stream, once per attempt. */
  message: StoredMessage;
  /** The header needs SMTPUTF8 (Envelope.smtpUtf8); non-ASCII addresses need it too. */
  smtpUtf8: boolean;
  /**
   * On a queue shared by several nodes: a connection slot of the domain
   * (store/limits.ts) for each session the transport opens, held while the
   * connection stays open (kept for reuse included); null when the other
   * nodes hold them all. Absent on one node, whose scheduler counts alone.
   */
  slot?: () => Promise<Slot | null>;
}

export interface JobResult {
  outcomes: Map<string, Outcome>;
  info: AttemptInfo;
  /** No connection slot was free (Job.slot): nothing was tried, and `outcomes` is empty. */
  noRoom?: boolean;
}

export interface Transport {
  deliver(job: Job): Promise<JobResult>;
  close(): void;
}
