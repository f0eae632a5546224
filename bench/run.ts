/**
 * Acceptance throughput of `posta serve`: messages/s and per-message latency
 * with N parallel SMTP sessions on the inbound port (plaintext, 5 KB
 * messages, fsync on as by default), then Postfix's smtp-source/smtp-sink on
 * the same machine when it is available; then end to end (bench/e2e.ts):
 * accepted on port 25, forwarded and delivered to a sink, by posta and then
 * by a real Postfix and chasquid (bench/peers.ts).
 * See bench/README.md.
 */
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer } from '../test/helpers/server.ts';
import { addCatchAll } from '../test/helpers/smtp.ts';
import { freePort } from '../test/helpers/net.ts';
import { MESSAGE_BYTES, columns, measure, postfixRoot, type Result } from './load.ts';
import { benchEndToEnd } from './e2e.ts';

const SESSIONS = (process.env.BENCH_SESSIONS ?? '1,8,32').split(',').map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const E2E_SECONDS = Number(process.env.BENCH_E2E_SECONDS ?? 5);
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN_SECONDS ?? 40);

async function benchPosta(): Promise<Result[]> {
  // one client address opens all the sessions: lift the per-address cap (20)
  const s = await startServer({ extraToml: '[limits]\nconnections_per_ip = 200' });
  try {
    await addCatchAll(s);
    const results: Result[] = [];
    for (const n of SESSIONS) {
      results.push(await measure('posta (fsync)', s.host, s.ports.smtp, n, SECONDS));
    }
    return results;
  } finally {
    await s.stop();
  }
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
  return columns(rows, [0, 7]);
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
notes.push(
  'Postfix (the whole of it, with its queue) and chasquid are measured end to end below, ' +
    'beside posta on the same load.',
);
console.log(`\n${table(results)}\n`);
for (const n of notes) console.log(`- ${n}`);

console.log(
  `\nposta end-to-end bench: ${MESSAGE_BYTES} B messages into port 25, forwarded by a catch-all ` +
    `alias to sink@dest.test and delivered over SMTP; sessions ${SESSIONS.join('/')}, ` +
    `${E2E_SECONDS} s of load each, then up to ${DRAIN_SECONDS} s to drain the queue`,
);
const e2e = await benchEndToEnd(SESSIONS, E2E_SECONDS, DRAIN_SECONDS).catch((err: Error) => ({
  header: [],
  table: '(no figures)',
  notes: [`end-to-end run failed: ${err.message}`],
}));
for (const h of e2e.header) console.log(h);
console.log(`\n${e2e.table}\n`);
for (const n of e2e.notes) console.log(`- ${n}`);
