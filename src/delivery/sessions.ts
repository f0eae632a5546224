/**
 * Idle SMTP sessions kept open for reuse, keyed by address, port, server name
 * and TLS mode, so a session is only reused under the same terms it was
 * opened with. A session idles at most IDLE_MS and carries at most
 * MAX_MESSAGES transactions, then is closed with QUIT.
 *
 * A session that holds a connection slot of its destination (Job.slot, on a
 * queue shared by several nodes) is kept under that destination's `scope`
 * too: it is reused for that domain only, which its slot counts.
 */
import type { Session, SessionOptions } from './session.ts';

const IDLE_MS = 5_000;
const MAX_MESSAGES = 100;

export class SessionPool {
  private idle = new Map<string, Session[]>();
  private timer: NodeJS.Timeout | null = null;

  take(o: SessionOptions, scope = ''): Session | null {
    const list = this.idle.get(key(o, scope));
    while (list?.length) {
      const s = list.pop() as Session;
      // past its idle time (the process was stopped, or the sweep is late)
      if (s.usable && Date.now() - s.lastUsed < IDLE_MS) return s;
      s.close();
    }
    return null;
  }

  give(o: SessionOptions, s: Session, scope = ''): void {
    if (!s.usable || s.messages >= MAX_MESSAGES) {
      s.close();
      return;
    }
    const k = key(o, scope);
    const list = this.idle.get(k) ?? [];
    list.push(s);
    this.idle.set(k, list);
    this.timer ??= setInterval(() => this.sweep(), 1000).unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [k, list] of this.idle) {
      const keep = list.filter((s) => {
        if (s.usable && now - s.lastUsed < IDLE_MS) return true;
        s.close();
        return false;
      });
      if (keep.length) this.idle.set(k, keep);
      else this.idle.delete(k);
    }
    if (this.idle.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  close(): void {
    for (const list of this.idle.values()) for (const s of list) s.close();
    this.idle.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}

function key(o: SessionOptions, scope: string): string {
  return `${scope}|${o.ip}|${o.port}|${o.servername}|${o.tls}|${o.auth?.user ?? ''}`;
}
