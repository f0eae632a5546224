/**
 * A raw SMTP client over node:net / node:tls for byte-exact tests: write any
 * bytes, read whole replies (multi-line included), upgrade with STARTTLS, and
 * read the queue the server keeps in DIR/data/queue.db.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { posta } from './posta.ts';
import type { TestServer } from './server.ts';

export interface Reply {
  code: number;
  /** Text of every line, without the code and separator. */
  lines: string[];
  /** The whole reply as received. */
  raw: string;
}

export class RawSmtp {
  socket: Socket | TLSSocket;
  /** Bytes received and not yet consumed by reply(). */
  buffer = '';
  /** Everything received on this connection, for diagnostics. */
  transcript = '';
  closed = false;
  private wake: (() => void) | null = null;
  private readonly onData = (d: Buffer) => {
    const s = d.toString('latin1');
    this.buffer += s;
    this.transcript += s;
    this.notify();
  };
  private readonly onClose = () => {
    this.closed = true;
    this.notify();
  };

  private constructor(socket: Socket | TLSSocket) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(socket: Socket | TLSSocket) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('end', this.onClose);
    socket.on('error', this.onClose);
  }

  private detach(socket: Socket | TLSSocket) {
    socket.off('data', this.onData);
    socket.off('close', this.onClose);
    socket.off('end', this.onClose);
    socket.off('error', this.onClose);
  }

  private notify() {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  static async connect(host: string, port: number, opts: { tls?: boolean } = {}) {
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s = opts.tls
        ? tlsConnect({ host, port, rejectUnauthorized: false, servername: 'mail.example.test' })
        : netConnect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${host}:${port} timed out`));
      }, 5000);
      s.once(opts.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    return new RawSmtp(socket);
  }

  /** Wait until `done()` or the timeout; true if done. */
  private async until(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return true;
  }

  /** Length of the first complete reply in the buffer, or 0. */
  private completeReply(): number {
    let pos = 0;
    for (;;) {
      const eol = this.buffer.indexOf('\r\n', pos);
      if (eol < 0) return 0;
      const line = this.buffer.slice(pos, eol);
      pos = eol + 2;
      if (/^\d{3}(?: |$)/.test(line)) return pos;
    }
  }

  /** The next whole reply; throws if none comes within the timeout (generous: CI machines are slow). */
  async reply(timeoutMs = 30_000): Promise<Reply> {
    const ok = await this.until(() => this.completeReply() > 0 || this.closed, timeoutMs);
    const n = this.completeReply();
    if (!ok || n === 0) {
      throw new Error(
        `no reply within ${timeoutMs} ms (closed=${this.closed}); transcript:\n${this.transcript}`,
      );
    }
    const raw = this.buffer.slice(0, n);
    this.buffer = this.buffer.slice(n);
    const lines = raw
      .split('\r\n')
      .filter((l) => l !== '')
      .map((l) => l.slice(4));
    return { code: Number(raw.slice(0, 3)), lines, raw };
  }

  /** Whether a complete reply arrives within `ms` (without consuming it). */
  async replyArrives(ms: number): Promise<boolean> {
    return this.until(() => this.completeReply() > 0, ms);
  }

  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  async cmd(line: string, timeoutMs?: number): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  /** True if the server closes the connection within `ms`. */
  async closedWithin(ms: number): Promise<boolean> {
    return this.until(() => this.closed, ms);
  }

  /**
   * TLS handshake on the current connection (after the 220 to STARTTLS was
   * read). Bytes the server sent in plaintext and not yet read stay in
   * `leftover`; the buffer then holds only what arrives inside TLS.
   */
  async upgrade(): Promise<{ leftover: string }> {
    const plain = this.socket;
    this.detach(plain);
    const leftover = this.buffer;
    this.buffer = '';
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({
        socket: plain,
        rejectUnauthorized: false,
        servername: 'mail.example.test',
      });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('TLS handshake timed out'));
      }, 5000);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    this.socket = secure;
    this.attach(secure);
    return { leftover };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** AUTH PLAIN initial response for `user`/`password`. */
export function plain(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`).toString('base64');
}

export interface QueueRow {
  id: string;
  sender: string;
  data: string;
  recipients: string[];
}

/** Everything in the queue right now (read-only). */
export function readQueue(dir: string): QueueRow[] {
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(join(dir, 'data', 'queue.db'), { readOnly: true });
  } catch {
    return [];
  }
  try {
    const messages = db.prepare('SELECT id, sender, data FROM messages ORDER BY id').all() as {
      id: string;
      sender: string;
      data: Uint8Array;
    }[];
    const rcpt = db.prepare('SELECT address FROM recipients WHERE message = ?');
    // a large message is in rows of message_parts (src/queue/spool.ts)
    const hasParts = db
      .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'message_parts'")
      .get();
    const parts = hasParts
      ? db.prepare('SELECT data FROM message_parts WHERE message = ? ORDER BY seq')
      : null;
    const text = (m: { id: string; data: Uint8Array }) => {
      const rows = (parts?.all(m.id) ?? []) as { data: Uint8Array }[];
      return Buffer.concat([m.data, ...rows.map((r) => r.data)]).toString('latin1');
    };
    return messages.map((m) => ({
      id: m.id,
      sender: m.sender,
      data: text(m),
      recipients: (rcpt.all(m.id) as { address: string }[]).map((r) => r.address),
    }));
  } finally {
    db.close();
  }
}

/** A queued message by queue id (taken from "queued as ID"), waiting briefly for it. */
export async function queued(dir: string, reply: string): Promise<QueueRow> {
  const id = /queued as (\S+)/.exec(reply)?.[1];
  if (!id) throw new Error(`no queue id in ${JSON.stringify(reply)}`);
  for (let i = 0; i < 20; i++) {
    const row = readQueue(dir).find((m) => m.id === id);
    if (row) return row;
    await sleep(100);
  }
  throw new Error(`message ${id} is not in the queue`);
}

/** `posta alias add '*@DOMAIN' TARGET` on a running server, then wait until it has read it. */
export async function addCatchAll(
  server: TestServer,
  domain = 'example.test',
  target = 'me@elsewhere.example',
): Promise<void> {
  await server.reload(async () => {
    const r = await posta(['alias', 'add', `*@${domain}`, target, '--dir', server.dir]);
    if (r.code !== 0) throw new Error(`posta alias add failed: ${r.stderr}`);
  });
}

/** Submit one message on 587 as the test server's account; resolves with its queue id. */
export async function submit(
  s: TestServer,
  to: string,
  subject = 'test',
  text = 'Hello.\r\n',
  headers: Record<string, string> = {},
): Promise<string> {
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.ports.submission,
    auth: { user: s.user, pass: s.password },
    tls: { rejectUnauthorized: false },
  });
  try {
    const info = await t.sendMail({ from: s.user, to, subject, text, headers });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    if (!id) throw new Error(`no queue id in ${JSON.stringify(info.response)}`);
    return id;
  } finally {
    t.close();
  }
}
