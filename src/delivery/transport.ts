/**
 * A transport takes one message to the recipients of one domain and says what
 * happened to each. The real one talks SMTP to MX hosts (mx.ts); the sandbox's
 * keeps a copy on disk (capture.ts).
 */
import type { AttemptInfo, Outcome } from './outcome.ts';
import type { StoredMessage } from '../queue/spool.ts';

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
}

export interface JobResult {
  outcomes: Map<string, Outcome>;
  info: AttemptInfo;
}

export interface Transport {
  deliver(job: Job): Promise<JobResult>;
  close(): void;
}
