/**
 * How much report reading port 25 may do. Reports are parsed on the thread
 * that serves the SMTP sessions (some 50 ms per MB of XML), and anyone may
 * mail postmaster@, so the bytes of documents read are a budget that refills
 * continuously, PER_HOUR an hour. A report past it is not read (a log line)
 * and is forwarded like any mail. A domain's real reports are a few a day of
 * some kilobytes each; a flood of the largest (8 MB) costs at most a few seconds of
 * the thread an hour.
 */
export const PER_HOUR = 64 * 1024 * 1024;

const HOUR = 3600_000;

export class ReportBudget {
  readonly perHour: number;
  private left: number;
  private at: number;

  constructor(perHour = PER_HOUR, now = Date.now()) {
    this.perHour = perHour;
    this.left = perHour;
    this.at = now;
  }

  /** Is anything left? Checked before inflating an attachment. */
  any(now = Date.now()): boolean {
    this.refill(now);
    return this.left > 0;
  }

  /** Takes `bytes` when they fit in what is left; false (and nothing taken) when not. */
  take(bytes: number, now = Date.now()): boolean {
    this.refill(now);
    if (bytes > this.left) return false;
    this.left -= bytes;
    return true;
  }

  private refill(now: number): void {
    this.left = Math.min(this.perHour, this.left + ((now - this.at) / HOUR) * this.perHour);
    this.at = now;
  }
}
