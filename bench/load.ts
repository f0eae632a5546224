/**
 * The load generator: N parallel SMTP sessions, each sending messages of a
 * given size with pipelined MAIL/RCPT/DATA, a fixed number per connection
 * before QUIT and a new connection; on submission with STARTTLS and AUTH
 * PLAIN first. Latency is from MAIL to the 250 after the final ".".
 * Also: many idle TLS connections held open, and the helpers the report
 * prints with.
 */
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Load {
  host: string;
  /** Several servers of one cluster: session i goes to hosts[i % hosts.length] (else to host). */
  hosts?: string[];
  port: number;
  sessions: number;
  seconds: number;
  bytes: number;
  from: string;
  to: string;
  /** Messages per connection before QUIT (then a new connection). */
  perConnection: number;
  /** STARTTLS first. */
  tls: boolean;
  /** AUTH PLAIN with these (after STARTTLS). */
  auth?: { user: string; password: string };
}

export interface LoadResult {
  accepted: number;
  seconds: number;
  p50: number;
  p99: number;
  /** 4xx/5xx replies to the end of DATA (counted, not fatal), with the first one. */
  refused: number;
  firstRefusal?: string;
  /** Sessions that failed (a closed connection, a reply timeout), with the first error. */
  errors: number;
  firstError?: string;
}

const bodies = new Map<number, string>();

export function message(bytes: number, from: string, to: string, id: string): string {
  const head = [
    `From: bench <${from}>`,
    `To: <${to}>`,
    `Subject: bench ${id}`,
    `Message-ID: <bench-${id}@bench.example>`,
    `Date: ${new Date().toUTCString()}`,
    '',
    '',
  ].join('\r\n');
  let body = bodies.get(bytes);
  if (body === undefined) {
    const line = 'y'.repeat(78) + '\r\n';
    body = line.repeat(Math.max(1, Math.ceil((bytes - 200) / line.length)));
    bodies.set(bytes, body);
  }
  return head + body;
}

type Next = () => Promise<string>;

/** Replies from one socket, one complete reply (its last line) at a time. */
function replies(sock: Socket | TLSSocket): Next {
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
    buf += d.toString('latin1');
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
  return () => {
    const q = queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    if (failed) return Promise.reject(failed);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('reply timeout (30 s)')), 30_000);
      waiting.push({
        resolve: (l) => (clearTimeout(t), resolve(l)),
        reject: (err) => (clearTimeout(t), reject(err)),
      });
    });
  };
}

async function expect(next: Next, code: string, what: string): Promise<string> {
  const line = await next();
  if (!line.startsWith(code)) throw new Error(`${what}: expected ${code}, got: ${line}`);
  return line;
}

/** Connects, greets, and on submission upgrades with STARTTLS and authenticates. */
async function open(
  l: Pick<Load, 'host' | 'port' | 'auth' | 'tls'>,
): Promise<{ sock: Socket; next: Next }> {
  let sock: Socket = connect(l.port, l.host);
  sock.setNoDelay(true);
  let next = replies(sock);
  await expect(next, '220', 'greeting');
  sock.write('EHLO bench.example\r\n');
  await expect(next, '250', 'EHLO');
  if (!l.tls) return { sock, next };
  sock.write('STARTTLS\r\n');
  await expect(next, '220', 'STARTTLS');
  sock.removeAllListeners('data');
  sock.removeAllListeners('close');
  sock.removeAllListeners('error');
  const secure = tlsConnect({ socket: sock, rejectUnauthorized: false, servername: 'bench' });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('TLS handshake timeout (30 s)')), 30_000);
    secure.once('secureConnect', () => (clearTimeout(t), resolve()));
    secure.once('error', (err: Error) => (clearTimeout(t), reject(err)));
  }).catch((err: unknown) => {
    secure.destroy();
    throw err;
  });
  sock = secure;
  next = replies(sock);
  sock.write('EHLO bench.example\r\n');
  await expect(next, '250', 'EHLO after STARTTLS');
  if (l.auth) {
    const token = Buffer.from(`\0${l.auth.user}\0${l.auth.password}`).toString('base64');
    sock.write(`AUTH PLAIN ${token}\r\n`);
    await expect(next, '235', 'AUTH');
  }
  return { sock, next };
}

async function session(l: Load, deadline: number, r: LoadResult, lat: number[], id: number) {
  for (let conn = 0; Date.now() < deadline; conn++) {
    const { sock, next } = await open({ ...l, host: l.hosts?.[id % l.hosts.length] ?? l.host });
    try {
      for (let i = 0; i < l.perConnection && Date.now() < deadline; i++) {
        const t0 = performance.now();
        sock.write(`MAIL FROM:<${l.from}>\r\nRCPT TO:<${l.to}>\r\nDATA\r\n`);
        await expect(next, '250', 'MAIL');
        await expect(next, '250', 'RCPT');
        await expect(next, '354', 'DATA');
        sock.write(`${message(l.bytes, l.from, l.to, `${process.pid}-${id}-${conn}-${i}`)}.\r\n`);
        const reply = await next();
        if (reply.startsWith('250')) lat.push(performance.now() - t0);
        else {
          r.refused++;
          r.firstRefusal ??= reply;
          sock.write('RSET\r\n');
          await expect(next, '250', 'RSET');
        }
      }
      sock.write('QUIT\r\n');
      await next().catch(() => '');
    } finally {
      sock.destroy();
    }
  }
}

export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

/** Runs the load for `seconds`; a failed session is counted and started again. */
export async function runLoad(l: Load): Promise<LoadResult> {
  const lat: number[] = [];
  const r: LoadResult = { accepted: 0, seconds: 0, p50: NaN, p99: NaN, refused: 0, errors: 0 };
  const start = performance.now();
  const deadline = Date.now() + l.seconds * 1000;
  await Promise.all(
    Array.from({ length: l.sessions }, async (_, n) => {
      while (Date.now() < deadline) {
        try {
          await session(l, deadline, r, lat, n);
        } catch (err) {
          r.errors++;
          r.firstError ??= (err as Error).message;
          await sleep(100);
        }
      }
    }),
  );
  r.seconds = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  r.accepted = lat.length;
  r.p50 = pct(lat, 50);
  r.p99 = pct(lat, 99);
  return r;
}

/** Opens `count` connections through STARTTLS and leaves them idle; returns how many made it. */
export async function idleTls(
  host: string,
  port: number,
  count: number,
): Promise<{ open: number; firstError?: string; close(): void }> {
  const socks: Socket[] = [];
  let firstError: string | undefined;
  for (let i = 0; i < count; i += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - i) }, async () => {
        try {
          socks.push((await open({ host, port, tls: true })).sock);
        } catch (err) {
          firstError ??= (err as Error).message;
        }
      }),
    );
  }
  return { open: socks.length, firstError, close: () => socks.forEach((s) => s.destroy()) };
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

/** Resolves once host:port takes connections; rejects when `gone()` says the server exited, or after `ms`. */
export async function waitForPort(
  host: string,
  port: number,
  gone: () => boolean,
  ms = 20_000,
): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
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
