/**
 * Deadlines for the replies of a receiving server (RFC 5321 §4.5.3.2), and a
 * ceiling on the whole delivery attempt.
 *
 * Each command the client sends waits at most its own time for the whole of
 * its reply, however slowly the server trickles it: an idle timer, reset by
 * every byte, lets a server answer one byte a second for hours. The wait for
 * a reply starts when the reply before it is complete (commands sent together
 * under PIPELINING are answered in order), and is cut short by what is left
 * of the attempt's ceiling.
 *
 * nodemailer only has an idle timer (socketTimeout) for replies, so
 * session.ts feeds this from its command writer and reply reader.
 */

/** What the client waits for, and the RFC 5321 §4.5.3.2 time it waits. */
export const REPLY_MS = {
  EHLO: 5 * 60_000, // as for MAIL: no time of its own in the RFC
  STARTTLS: 2 * 60_000,
  AUTH: 5 * 60_000,
  'MAIL FROM': 5 * 60_000, // §4.5.3.2.2
  'RCPT TO': 5 * 60_000, // §4.5.3.2.3
  DATA: 2 * 60_000, // §4.5.3.2.4, the 354
  'a data block': 3 * 60_000, // §4.5.3.2.5, each write of the message taken
  'the end of data': 10 * 60_000, // §4.5.3.2.6, the reply to the final dot
  RSET: 5 * 60_000,
  QUIT: 2 * 60_000,
} as const;

export type Waiting = keyof typeof REPLY_MS;

export interface DeadlineOptions {
  /** The longest any one reply may take (`[delivery] reply_timeout`); the RFC time when shorter. */
  replyMs: number;
  /** Called once, with the sentence saying what took too long. */
  onMiss: (text: string) => void;
  server: string;
}

export function commandOf(line: string): Waiting {
  const verb = /^(MAIL FROM|RCPT TO|[A-Z]+)/i.exec(line)?.[1]?.toUpperCase() ?? '';
  if (verb === 'HELO' || verb === 'LHLO') return 'EHLO';
  return verb in REPLY_MS ? (verb as Waiting) : 'RSET';
}

export class ReplyDeadlines {
  private readonly o: DeadlineOptions;
  private pending: Waiting[] = [];
  private timer: NodeJS.Timeout | null = null;
  private ceiling: NodeJS.Timeout | null = null;
  private missed = false;

  constructor(o: DeadlineOptions) {
    this.o = o;
  }

  /** An attempt uses the session until `until` (epoch ms), `limitMs` after it began. */
  begin(until: number, limitMs: number): void {
    this.end();
    this.ceiling = setTimeout(
      () =>
        this.miss(
          `The delivery attempt (last to ${this.o.server}) did not finish within ${duration(limitMs)}`,
        ),
      Math.max(until - Date.now(), 0),
    );
    this.ceiling.unref();
  }

  /** The attempt is over; the session may idle in the pool. */
  end(): void {
    if (this.ceiling) clearTimeout(this.ceiling);
    this.ceiling = null;
  }

  /** A command went out (or the message, or its end): its reply is due. */
  expect(what: Waiting): void {
    this.pending.push(what);
    if (this.pending.length === 1) this.arm();
  }

  /** The message is being written: each block taken restarts the block's time. */
  progress(): void {
    if (this.pending[0] === 'a data block') this.arm();
  }

  /** One whole reply came in (or the message was all written): it answers the oldest wait. */
  replied(): void {
    this.pending.shift();
    this.arm();
  }

  /** Nothing is due any more (the session closed). */
  stop(): void {
    this.pending = [];
    this.end();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const what = this.pending[0];
    if (!what || this.missed) return;
    const ms = Math.min(REPLY_MS[what], this.o.replyMs);
    const server = this.o.server;
    const text =
      what === 'a data block'
        ? `${server} did not take a block of the message within ${duration(ms)}`
        : what === 'the end of data'
          ? `${server} did not finish its reply to the end of the message within ${duration(ms)}`
          : `${server} did not finish its reply to ${what} within ${duration(ms)}`;
    this.timer = setTimeout(() => this.miss(text), ms);
    this.timer.unref();
  }

  private miss(text: string): void {
    if (this.missed) return;
    this.missed = true;
    this.stop();
    this.o.onMiss(text);
  }
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s >= 60 && s % 60 === 0) return s === 60 ? '1 minute' : `${s / 60} minutes`;
  return s === 1 ? '1 second' : `${s} seconds`;
}
