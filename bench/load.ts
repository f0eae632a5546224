/**
 * The load generator shared by the acceptance and end-to-end benches: N
 * parallel SMTP sessions sending 5 KB messages with pipelined MAIL/RCPT/DATA,
 * plus the small helpers both print with.
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../test/helpers/posta.ts';

export const MESSAGE_BYTES = 5 * 1024;

export interface Result {
  server: string;
  sessions: number;
  messages: number;
  seconds: number;
  p50?: number;
  p99?: number;
  note?: string;
}

export function message(i: number): string {
  const head = [
    'From: bench <bench@remote.example>',
    'To: rcpt@example.test',
    `Subject: bench ${i}`,
    `Message-ID: <bench-${i}-${process.pid}@remote.example>`,
    '',
    '',
  ].join('\r\n');
  const line = 'y'.repeat(78) + '\r\n';
  return head + line.repeat(Math.ceil((MESSAGE_BYTES - head.length) / line.length));
}

/** Replies from one SMTP session, one complete reply (last line) at a time. */
function replies(sock: Socket) {
  let buf = '';
  const queue: string[] = [];
  const waiting: { resolve: (line: string) => void; reject: (err: Error) => void }[] = [];
  let failed: Error | undefined;
  const fail = (err: Error) => {
    failed ??= err;
    for (const w of waiting.splice(0)) w.reject(failed);
  };
  sock.on('error', fail);
  sock.on('close', () => fail(new Error('the server closed the connection')));
  sock.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (line[3] === '-') continue;
      const w = waiting.shift();
      if (w) w.resolve(line);
      else queue.push(line);
    }
  });
  return (): Promise<string> => {
    const q = queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    if (failed) return Promise.reject(failed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('reply timeout')), 10_000);
      waiting.push({
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
        reject: (err) => {
          clearTimeout(t);
          reject(err);
        },
      });
    });
  };
}

async function expect(next: () => Promise<string>, code: string): Promise<string> {
  const line = await next();
  if (!line.startsWith(code)) throw new Error(`expected ${code}, got: ${line}`);
  return line;
}

/** One session: pipelined MAIL/RCPT/DATA, then the body; latency is MAIL to the 250 after ".". */
async function session(
  host: string,
  port: number,
  deadline: number,
  latencies: number[],
  deferred: string[],
  id: number,
): Promise<void> {
  const sock = connect(port, host);
  sock.setNoDelay(true);
  try {
    await talk(sock, deadline, latencies, deferred, id);
  } finally {
    sock.destroy();
  }
}

async function talk(
  sock: Socket,
  deadline: number,
  latencies: number[],
  deferred: string[],
  id: number,
): Promise<void> {
  const next = replies(sock);
  await expect(next, '220');
  sock.write('EHLO bench.example\r\n');
  await expect(next, '250');
  for (let i = 0; Date.now() < deadline && i < 1_000_000; i++) {
    const t0 = performance.now();
    sock.write('MAIL FROM:<bench@remote.example>\r\nRCPT TO:<rcpt@example.test>\r\nDATA\r\n');
    await expect(next, '250');
    await expect(next, '250');
    await expect(next, '354');
    sock.write(`${message(id * 1_000_000 + i)}.\r\n`);
    const reply = await next();
    if (reply.startsWith('250')) latencies.push(performance.now() - t0);
    else if (reply.startsWith('4')) deferred.push(reply);
    else throw new Error(`expected 250, got: ${reply}`);
  }
  sock.write('QUIT\r\n');
  await next().catch(() => '');
}

export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/** `sessions` parallel sessions to host:port for `seconds`; latencies from MAIL to the 250. */
export async function measure(
  name: string,
  host: string,
  port: number,
  sessions: number,
  seconds: number,
): Promise<Result> {
  const latencies: number[] = [];
  const deferred: string[] = [];
  const start = performance.now();
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: sessions }, (_, n) =>
      session(host, port, deadline, latencies, deferred, n),
    ),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    server: name,
    sessions,
    messages: latencies.length,
    seconds: elapsed,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    note: deferred.length ? `${deferred.length} deferred: ${deferred[0]}` : undefined,
  };
}

/** Where `dpkg -x postfix_*.deb DIR` put Postfix, if anywhere. */
export function postfixRoot(): string | undefined {
  const candidates = [process.env.POSTFIX_ROOT, join(ROOT, 'bench/.peers/postfix'), '/'];
  return candidates.find((d) => d && existsSync(join(d, 'usr/sbin/smtp-sink')));
}

/** Rows of cells as aligned columns: the columns in `left` are left-aligned. */
export function columns(rows: string[][], left: number[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (left.includes(i) ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** Resolves once host:port takes connections; rejects when `gone()` says the server exited, or after 5 s. */
export async function waitForPort(host: string, port: number, gone: () => boolean): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (gone()) throw new Error('it exited');
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, host);
      sock.once('connect', () => {
        sock.destroy();
        resolve(true);
      });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}
