/**
 * Acceptance throughput of `posta serve`: messages/s and per-message latency
 * with N parallel SMTP sessions on the inbound port (plaintext, 5 KB
 * messages, fsync on as by default), then Postfix's smtp-source/smtp-sink and
 * chasquid on the same machine when they are available. See bench/README.md.
 */
import { connect, type Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer } from '../test/helpers/server.ts';
import { ROOT, posta } from '../test/helpers/posta.ts';
import { freePort } from '../test/helpers/net.ts';

const SESSIONS = (process.env.BENCH_SESSIONS ?? '1,8,32').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const MESSAGE_BYTES = 5 * 1024;

interface Result {
  server: string;
  sessions: number;
  messages: number;
  seconds: number;
  p50?: number;
  p99?: number;
  note?: string;
}

function message(i: number): string {
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
  const waiting: ((line: string) => void)[] = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\r\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 2);
      if (line[3] === '-') continue;
      const w = waiting.shift();
      if (w) w(line);
      else queue.push(line);
    }
  });
  return (): Promise<string> => {
    const q = queue.shift();
    if (q !== undefined) return Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('reply timeout')), 10_000);
      waiting.push((l) => {
        clearTimeout(t);
        resolve(l);
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
  sock.destroy();
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;
}

async function measure(
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

async function benchPosta(): Promise<Result[]> {
  // one client address opens all the sessions: lift the per-address cap (20)
  const s = await startServer({ extraToml: '[limits]\nconnections_per_ip = 200' });
  try {
    const r = await posta([
      'alias',
      'add',
      '*@example.test',
      'me@elsewhere.example',
      '--dir',
      s.dir,
    ]);
    if (r.code !== 0) throw new Error(r.stderr);
    await sleep(2500); // the server re-reads aliases
    const results: Result[] = [];
    for (const n of SESSIONS) {
      results.push(await measure('posta (fsync)', s.host, s.ports.smtp, n, SECONDS));
    }
    return results;
  } finally {
    await s.stop();
  }
}

/** Where `dpkg -x postfix_*.deb DIR` put Postfix, if anywhere. */
function postfixRoot(): string | undefined {
  const candidates = [process.env.POSTFIX_ROOT, join(ROOT, 'bench/.peers/postfix'), '/'];
  return candidates.find((d) => d && existsSync(join(d, 'usr/sbin/smtp-sink')));
}

async function benchPostfix(): Promise<Result[] | string> {
  const root = postfixRoot();
  if (!root) {
    return (
      'Postfix smtp-sink/smtp-source not found. To include them: ' +
      'mkdir -p bench/.peers && cd bench/.peers && apt-get download postfix && ' +
      'dpkg -x postfix_*.deb postfix   (or set POSTFIX_ROOT; never `apt-get install postfix`)'
    );
  }
  const env = { ...process.env, LD_LIBRARY_PATH: join(root, 'usr/lib/postfix') };
  const host = '127.0.0.1';
  const port = await freePort(host);
  const sink = spawn(
    join(root, 'usr/sbin/smtp-sink'),
    [
      // as root it must drop privileges
      ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []),
      `${host}:${port}`,
      '256',
    ],
    {
      env,
      stdio: 'ignore',
    },
  );
  try {
    await sleep(300);
    const results: Result[] = [];
    for (const n of SESSIONS) {
      // smtp-source sends a fixed count; size it from posta's rate so each run is short
      const count = Math.max(200, n * 200);
      const start = performance.now();
      await new Promise<void>((resolve, reject) => {
        execFile(
          join(root, 'usr/sbin/smtp-source'),
          [
            '-s',
            String(n),
            '-m',
            String(count),
            '-l',
            String(MESSAGE_BYTES),
            '-f',
            'bench@remote.example',
            '-t',
            'rcpt@example.test',
            `${host}:${port}`,
          ],
          { env, timeout: 30_000 },
          (err) => (err ? reject(new Error(err.message)) : resolve()),
        );
      });
      results.push({
        server: 'postfix smtp-sink',
        sessions: n,
        messages: count,
        seconds: (performance.now() - start) / 1000,
        note: 'no queue, no fsync',
      });
    }
    return results;
  } finally {
    sink.kill('SIGTERM');
  }
}

function benchChasquid(): string {
  const found = (process.env.PATH ?? '')
    .split(':')
    .some((d) => d && existsSync(join(d, 'chasquid')));
  if (!found) {
    return (
      'chasquid not found: skipped. To include it, install it (apt-get download chasquid && ' +
      'dpkg -x chasquid_*.deb DIR, or go install blitiri.com.ar/go/chasquid@latest) and put it on PATH.'
    );
  }
  return 'chasquid found on PATH, but running it needs a config folder and certificates; not automated yet: skipped.';
}

function table(results: Result[]): string {
  const rows = [
    ['server', 'sessions', 'messages', 'seconds', 'msg/s', 'p50 ms', 'p99 ms', 'note'],
    ...results.map((r) => [
      r.server,
      String(r.sessions),
      String(r.messages),
      r.seconds.toFixed(2),
      (r.messages / r.seconds).toFixed(0),
      r.p50 === undefined ? '-' : r.p50.toFixed(1),
      r.p99 === undefined ? '-' : r.p99.toFixed(1),
      r.note ?? '',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === 0 || i === 7 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  '),
    )
    .join('\n');
}

const results: Result[] = [];
const notes: string[] = [];
console.log(
  `posta acceptance bench: ${MESSAGE_BYTES} B messages, sessions ${SESSIONS.join('/')}, ${SECONDS} s each`,
);
results.push(...(await benchPosta()));
const pf = await benchPostfix().catch((err: Error) => `Postfix run failed: ${err.message}`);
if (typeof pf === 'string') notes.push(pf);
else results.push(...pf);
notes.push(benchChasquid());
console.log(`\n${table(results)}\n`);
for (const n of notes) console.log(`- ${n}`);
