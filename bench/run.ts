/**
 * `npm run bench`: posta, Postfix 3.7, Postfix 3.7 + OpenDKIM and chasquid
 * 1.11 on one load, in one private network namespace (only `lo`), each
 * delivering by MX to the same smtp-sink. Prints the tables and the
 * posta/peer ratios and writes bench/RESULTS.md. See bench/README.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '../test/helpers/posta.ts';
import { startBenchDns } from './dns.ts';
import { columns, idleTls, runLoad } from './load.ts';
import { pssSampler } from './proc.ts';
import {
  DNS_ADDRESS,
  PEERS,
  SINK_ADDRESS,
  modeMail,
  startChasquid,
  startPostfix,
  startPosta,
  startPostaCluster,
  type Server,
} from './servers.ts';
import { startSink, type Sink } from './sink.ts';

const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const list = (v: string) =>
  v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
const SESSIONS = list(env.BENCH_SESSIONS ?? (QUICK ? '20' : '1,20,100')).map(Number);
const SIZES = list(env.BENCH_SIZES ?? (QUICK ? '5120' : '5120,102400')).map(Number);
const MODES = list(env.BENCH_MODES ?? 'submission,port25');
const SECONDS = Number(env.BENCH_SECONDS ?? (QUICK ? 3 : 10));
const DRAIN_SECONDS = Number(env.BENCH_DRAIN_SECONDS ?? 60);
const PER_CONNECTION = Number(env.BENCH_PER_CONNECTION ?? 100);
const IDLE = Number(env.BENCH_IDLE_CONNECTIONS ?? (QUICK ? 200 : 1000));
const TASKSET = (env.BENCH_TASKSET ?? '1') === '1';
const MEMORY = (env.BENCH_MEMORY ?? '1') === '1';
const RESULTS = env.BENCH_RESULTS ?? join(ROOT, 'bench/RESULTS.md');
const SERVERS = list(
  env.BENCH_SERVERS ??
    'posta,posta-checks-off,posta-pg-1,posta-pg-2,posta-pg-3,postfix,postfix+opendkim,chasquid',
);

if (env.POSTA_BENCH_NS !== '1') {
  // re-exec inside a private network namespace (only lo) and mount namespace (its own resolv.conf)
  if (process.getuid?.() !== 0) {
    console.error(
      'npm run bench must run as root: it puts every server in a private network namespace (unshare --net --mount).',
    );
    process.exit(1);
  }
  const r = spawnSync(
    'unshare',
    [
      '--net',
      '--mount',
      '--',
      process.execPath,
      ...process.execArgv,
      fileURLToPath(import.meta.url),
    ],
    { stdio: 'inherit', env: { ...env, POSTA_BENCH_NS: '1' } },
  );
  process.exit(r.status ?? 1);
}

interface Row {
  mode: string;
  bytes: number;
  sessions: number;
  server: string;
  accepted: number;
  accRate: number;
  delivered: number;
  e2eRate: number;
  p50: number;
  p99: number;
  cpuMs: number;
  fsyncs: number;
  peakPss: number;
  notes: string[];
}

const MiB = 1024 * 1024;
const notes: string[] = [];

function setUpNamespace(): void {
  execFileSync('ip', ['link', 'set', 'lo', 'up']);
  const resolv = join(tmpdir(), `posta-bench-resolv-${process.pid}.conf`);
  writeFileSync(resolv, `nameserver ${DNS_ADDRESS}\noptions attempts:1 timeout:2\n`);
  // this mount namespace is private: the bind is seen by the servers only
  execFileSync('mount', ['--bind', resolv, '/etc/resolv.conf']);
}

async function row(s: Server, sink: Sink, mode: string, bytes: number, n: number): Promise<Row> {
  const submission = mode === 'submission';
  const cpu0 = s.tree.cpuSeconds();
  const fsync0 = s.fsyncs();
  const sink0 = sink.count();
  const pss = pssSampler(s.tree);
  const t0 = performance.now();
  let got = 0;
  let last = t0;
  const poll = setInterval(() => {
    const c = sink.count() - sink0;
    if (c !== got) [got, last] = [c, performance.now()];
  }, 20);
  const load = await runLoad({
    host: s.host,
    ...(s.hosts ? { hosts: s.hosts } : {}),
    port: submission ? s.submission! : s.smtp!,
    sessions: n,
    seconds: SECONDS,
    bytes,
    perConnection: PER_CONNECTION,
    ...modeMail(submission, s.auth),
  });
  const deadline = Date.now() + DRAIN_SECONDS * 1000;
  while (got < load.accepted && Date.now() < deadline) await sleep(20);
  clearInterval(poll);
  const cpu = s.tree.cpuSeconds() - cpu0;
  const rowNotes: string[] = [];
  if (load.refused) rowNotes.push(`${load.refused} refused, first: ${load.firstRefusal}`);
  if (load.errors) rowNotes.push(`${load.errors} sessions failed, first: ${load.firstError}`);
  if (got < load.accepted) {
    rowNotes.push(`${load.accepted - got} not at the sink after ${DRAIN_SECONDS} s of drain`);
  }
  const r: Row = {
    mode,
    bytes,
    sessions: n,
    server: s.name,
    accepted: load.accepted,
    accRate: load.accepted / load.seconds,
    delivered: got,
    e2eRate: got / ((last - t0) / 1000),
    p50: load.p50,
    p99: load.p99,
    cpuMs: (cpu * 1000) / load.accepted,
    fsyncs: (s.fsyncs() - fsync0) / load.accepted,
    peakPss: pss.stop(),
    notes: rowNotes,
  };
  await sleep(500); // let the tree settle before the next row
  return r;
}

const f0 = (x: number) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const kb = (b: number) => (b >= 1024 ? `${Math.round(b / 1024)} KB` : `${b} B`);

function table(rows: Row[]): string {
  return columns(
    [
      [
        'mode',
        'size',
        'N',
        'server',
        'accepted',
        'acc msg/s',
        'e2e msg/s',
        'p50 ms',
        'p99 ms',
      ].concat(['cpu ms/msg', 'fsync/msg', 'peak PSS MiB']),
      ...rows.map((r) => [
        r.mode,
        kb(r.bytes),
        String(r.sessions),
        r.server,
        String(r.accepted),
        f0(r.accRate),
        f0(r.e2eRate),
        f1(r.p50),
        f1(r.p99),
        f2(r.cpuMs),
        f2(r.fsyncs),
        f0(r.peakPss / MiB),
      ]),
    ],
    [0, 3],
  );
}

function ratios(rows: Row[]): string {
  const out = [
    ['mode', 'size', 'N', 'posta', 'vs', 'e2e ratio', 'accepted ratio', 'cpu/msg ratio'],
  ];
  for (const r of rows.filter((x) => x.server.startsWith('posta'))) {
    for (const p of rows) {
      // posta on PostgreSQL is set beside posta on SQLite too
      const peer =
        !p.server.startsWith('posta') || (r.server.startsWith('posta pg') && p.server === 'posta');
      if (!peer || p.mode !== r.mode) continue;
      if (p.bytes !== r.bytes || p.sessions !== r.sessions) continue;
      out.push([
        r.mode,
        kb(r.bytes),
        String(r.sessions),
        r.server,
        p.server,
        `${f2(r.e2eRate / p.e2eRate)}×`,
        `${f2(r.accRate / p.accRate)}×`,
        `${f2(r.cpuMs / p.cpuMs)}×`,
      ]);
    }
  }
  return columns(out, [0, 3, 4]);
}

function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

function machine(): string[] {
  const os = /PRETTY_NAME="([^"]*)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '?';
  const debs = sh('ls', [join(PEERS, 'debs')]).split('\n');
  const version = (p: string) => debs.find((d) => d.startsWith(`${p}_`))?.split('_')[1] ?? '?';
  return [
    `${os}, Linux ${sh('uname', ['-r'])}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ` +
      `${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM`,
    `${tmpdir()} (queues and posta's data/) on ${sh('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', tmpdir()]).replace(/\s+/g, ' ')}`,
    `Node ${process.version}; Postfix ${version('postfix')}, OpenDKIM ${version('opendkim')}, ` +
      `chasquid ${version('chasquid')} (Debian packages, dpkg -x)`,
    `load average at start: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  ];
}

async function main(): Promise<void> {
  if (!existsSync(join(PEERS, 'postfix/usr/sbin/smtp-sink'))) {
    console.error(`The peers are not unpacked under ${PEERS}: run bench/setup.sh first.`);
    process.exit(1);
  }
  setUpNamespace();
  const header = machine();
  const settings =
    `modes ${MODES.join('/')}, sizes ${SIZES.map(kb).join('/')}, sessions ${SESSIONS.join('/')}, ` +
    `${SECONDS} s of load per row, ${PER_CONNECTION} messages per connection, ` +
    `drain up to ${DRAIN_SECONDS} s${QUICK ? ' (BENCH_QUICK=1)' : ''}`;
  console.log(`posta bench: ${settings}\n${header.join('\n')}`);
  const sink = await startSink(SINK_ADDRESS);
  const dns = await startBenchDns(DNS_ADDRESS, {
    'dest.test': { MX: ['10 mx.dest.test'] },
    'mx.dest.test': { A: [SINK_ADDRESS] },
  });
  let servers: Server[] = [];
  const rows: Row[] = [];
  const memory: string[][] = [['server', 'idle PSS MiB', `PSS with ${IDLE} idle TLS MiB`, 'note']];
  const starters: [string, () => Promise<Server>][] = [
    ['posta', () => startPosta({ host: '127.0.1.1', name: 'posta' })],
    [
      'posta-checks-off',
      () => startPosta({ host: '127.0.1.4', name: 'posta checks off', checks: false }),
    ],
    ...[1, 2, 3].map(
      (n) =>
        [
          `posta-pg-${n}`,
          () =>
            startPostaCluster(
              n,
              [1, 2, 3].map((i) => `127.0.${4 + n}.${i}`),
            ),
        ] as [string, () => Promise<Server>],
    ),
    ['postfix', () => startPostfix('127.0.2.1', false)],
    ['postfix+opendkim', () => startPostfix('127.0.2.2', true)],
    ['chasquid', () => startChasquid('127.0.3.1')],
  ];
  const startAll = async (): Promise<Server[]> => {
    const started: Server[] = [];
    for (const [what, start] of starters) {
      if (!SERVERS.includes(what)) continue;
      try {
        started.push(await start());
      } catch (err) {
        notes.push(`${what} not run: ${(err as Error).message}`);
      }
    }
    await sleep(3000);
    return started;
  };
  try {
    // Memory first, on servers that then stop: idle, then with idle TLS
    // connections. Measured after the load it would be what a server kept of
    // it (peak PSS per row shows that), and Postfix's thousand idle smtpd
    // processes would slow its rows after.
    servers = MEMORY ? await startAll() : [];
    // a cluster's memory is in its rows (peak PSS), with the database's
    for (const s of servers.filter((x) => x.submission !== undefined && !x.hosts)) {
      const idle = s.tree.pss();
      const conns = await idleTls(s.host, s.submission!, IDLE);
      await sleep(2000);
      const pss = s.tree.pss();
      conns.close();
      memory.push([
        s.name,
        f0(idle / MiB),
        f0(pss / MiB),
        conns.open < IDLE ? `only ${conns.open} opened: ${conns.firstError}` : '',
      ]);
    }
    for (const s of servers) {
      for (const p of s.problems()) notes.push(`${s.name} (memory) logged: ${p.slice(0, 300)}`);
      await s.stop();
    }
    servers = await startAll();
    notes.push(
      'peak PSS is of the whole tree at that time: Postfix keeps idle smtpd processes of earlier ' +
        'rows for up to 100 s, so its later rows count them too',
      'the taskset runs start a fresh posta and give it one discarded N=1 row first, so the ' +
        'code it loads on first use and its worker threads are started in both',
    );
    notes.push(
      "posta checks off: [inbound] checks = false, port 25 only; Postfix's relay checks nothing either",
      'idle PSS and PSS with idle TLS connections are measured on a first start of each server, ' +
        'which then stops; the rows of load run on a second start',
    );
    for (const mode of MODES) {
      const peers = servers.filter((s) =>
        mode === 'submission' ? s.submission !== undefined : s.smtp !== undefined,
      );
      for (const bytes of mode === 'submission' ? SIZES : SIZES.slice(0, 1)) {
        for (const n of SESSIONS) {
          // the servers take turns on each row, so a change in the machine's load hits them alike
          for (const s of peers) {
            const r = await row(s, sink, mode, bytes, n);
            rows.push(r);
            console.log(table([r]).split('\n')[1]);
            notes.push(...r.notes.map((x) => `${r.server} ${mode} ${kb(bytes)} N=${n}: ${x}`));
          }
        }
      }
    }
    for (const s of servers) {
      for (const p of s.problems()) notes.push(`${s.name} logged: ${p.slice(0, 300)}`);
    }
  } finally {
    for (const s of servers) await s.stop();
  }
  const scaling: Row[] = [];
  const n = SESSIONS.includes(20) ? 20 : SESSIONS.at(-1)!;
  if (TASKSET && MODES.includes('submission') && cpus().length >= 2) {
    for (const [cpusArg, host] of [
      ['0', '127.0.1.2'],
      ['0,1', '127.0.1.3'],
    ] as const) {
      const s = await startPosta({ host, name: `posta taskset ${cpusArg}`, cpus: cpusArg });
      try {
        await sleep(2000);
        // a fresh posta's first seconds of N=20 are far slower (see the note): warm it up as the main one was
        await row(s, sink, 'submission', SIZES[0]!, 1);
        scaling.push(await row(s, sink, 'submission', SIZES[0]!, n));
      } finally {
        await s.stop();
      }
    }
  }
  dns.stop();
  sink.stop();

  const out: string[] = [];
  out.push(table(rows), '', 'posta / peer (above 1 means posta is faster or, for cpu, costlier):');
  out.push(ratios(rows));
  if (MEMORY) out.push('', columns(memory, [0, 3]));
  if (scaling.length === 2) {
    const [one, two] = scaling as [Row, Row];
    out.push('', `posta pinned with taskset (submission ${kb(SIZES[0]!)}, N=${n}):`);
    out.push(table(scaling));
    out.push(`2 cores / 1 core, end to end: ${f2(two.e2eRate / one.e2eRate)}×`);
  }
  out.push('');
  for (const s of servers) out.push(`- ${s.name}: ${s.notes.join('; ')}`);
  for (const x of notes) out.push(`- ${x}`);
  const report = out.join('\n');
  console.log(`\n${report}`);
  const end = `load average at end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`;
  writeFileSync(
    RESULTS,
    [
      '# posta bench results',
      '',
      `Written by \`npm run bench\` on ${new Date().toISOString()}: ${settings}.`,
      ...(env.BENCH_NOTE ? ['', env.BENCH_NOTE] : []),
      '',
      ...[...header, end].map((h) => `- ${h}`),
      '',
      '```',
      report,
      '```',
      '',
    ].join('\n'),
  );
  console.log(`\nwritten to ${RESULTS}`);
}

await main();
