/**
 * End to end: the same load as the acceptance bench goes into posta's port 25,
 * a catch-all alias forwards every message to sink@dest.test, and posta's
 * delivery workers look up dest.test's MX on a DNS server on loopback
 * (bench/dns.ts) and deliver to a receiving sink on 127.x.y.z:25 (Postfix
 * smtp-sink, else an in-process smtp-server). Per N sessions: messages accepted and delivered,
 * both rates, and the latency from the 250 acceptance to the delivery, taken
 * from the timestamps of posta's own "accepted" and "delivered" log lines.
 * After each N the queue is left to drain before the next one starts.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { SMTPServer } from 'smtp-server';
import { startServer, type TestServer } from '../test/helpers/server.ts';
import { startDns, SOA } from '../test/helpers/dns.ts';
import { randomLoopback } from '../test/helpers/net.ts';
import { addCatchAll } from '../test/helpers/smtp.ts';
import { columns, measure, pct, postfixRoot, waitForPort } from './load.ts';
import { startBenchDns } from './dns.ts';
import { startChasquidRelay, startPostfixRelay, type Relay } from './peers.ts';

/** The delivery settings the bench runs with; printed with the results. */
const DELIVERY = {
  concurrency: 64,
  connections_per_domain: 32,
  messages_per_minute_per_domain: 0,
};
const CONNECTIONS_PER_IP = 200;

interface Sink {
  address: string;
  name: string;
  /** Messages the sink has received so far (its own count). */
  count(): number;
  /** SMTP sessions the sink has seen end (smtp-sink) or start (smtp-server). */
  sessions(): number;
  stop(): Promise<void>;
}

export interface EndToEnd {
  server: string;
  sessions: number;
  accepted: number;
  acceptSeconds: number;
  delivered: number;
  /** First acceptance to last delivery, in seconds. */
  deliverSeconds: number;
  /** Accepted but not yet delivered when the load stopped. */
  backlog: number;
  /** Load stop to last delivery, in seconds. */
  drainSeconds: number;
  sinkCount: number;
  /** posta's CPU time over its wall time, load start to end of drain (Linux only). */
  cpu?: number;
  p50: number;
  p99: number;
  /** Median duration of one delivery attempt as posta logs it. */
  attemptP50?: number;
  notes: string[];
}

interface LogLine {
  time: number;
  level: number;
  msg: string;
  qid?: string;
  rcpt?: string;
  reply?: string;
  err?: string;
  ms?: number;
}

/** Postfix smtp-sink on ADDRESS:25, counting messages with -c; null when not found. */
async function postfixSink(address: string): Promise<Sink | null> {
  const root = postfixRoot();
  if (!root) return null;
  let count = 0;
  let sessions = 0;
  const child = spawn(
    join(root, 'usr/sbin/smtp-sink'),
    [
      '-c', // running counters on stdout: "sess=N quit=N mesg=N\r"
      ...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), // as root it must drop privileges
      `${address}:25`,
      '256',
    ],
    {
      env: { ...process.env, LD_LIBRARY_PATH: join(root, 'usr/lib/postfix') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    const parts = (out + d.toString()).split('\r');
    out = parts.pop() ?? '';
    const last = parts.findLast((p) => /sess=\d+ .*mesg=\d+/.test(p));
    const m = last && /sess=(\d+) .*mesg=(\d+)/.exec(last);
    if (m) {
      sessions = Number(m[1]);
      count = Number(m[2]);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(address, 25, () => child.exitCode !== null).catch((err: Error) => {
    child.kill();
    throw new Error(`smtp-sink did not start: ${err.message} ${stderr}`);
  });
  return {
    address,
    name: 'Postfix smtp-sink (no TLS, no disk)',
    count: () => count,
    sessions: () => sessions,
    async stop() {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The fallback: smtp-server in this process, no TLS, throwing messages away. */
async function nodeSink(address: string, why: string): Promise<Sink> {
  let count = 0;
  let sessions = 0;
  const server = new SMTPServer({
    authOptional: true,
    onConnect(_session, callback) {
      sessions++;
      callback();
    },
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 0,
    onData(stream, _session, callback) {
      stream.on('end', () => {
        count++;
        callback();
      });
      stream.resume();
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(25, address, () => resolve());
  });
  return {
    address,
    name: `node smtp-server in the bench process (no TLS, no disk), because ${why}`,
    count: () => count,
    sessions: () => sessions,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** A DNS server on loopback whose MX for dest.test is mx.dest.test at `address`. */
async function mxDns(address: string): Promise<{ endpoint: string; name: string; stop(): void }> {
  if (process.env.BENCH_DNS === 'dnslib') {
    const zone = [
      SOA('test'),
      'dest.test. IN MX 10 mx.dest.test.',
      `mx.dest.test. IN A ${address}`,
    ];
    const dns = await startDns(`${zone.join('\n')}\n`);
    return { ...dns, name: 'test/peers/dns_server.py (dnslib; BENCH_DNS=dnslib)' };
  }
  const dns = await startBenchDns(randomLoopback(), {
    'dest.test': { MX: ['10 mx.dest.test'] },
    'mx.dest.test': { A: [address] },
  });
  return { ...dns, name: 'bench/dns.ts' };
}

/** smtp-sink when it is there and starts, else the in-process fallback; BENCH_SINK=node forces it. */
async function startSink(address: string): Promise<Sink> {
  let why = 'Postfix smtp-sink was not found (see "Peers" in bench/README.md)';
  if (process.env.BENCH_SINK === 'node') why = 'BENCH_SINK=node';
  else {
    try {
      const sink = await postfixSink(address);
      if (sink) return sink;
    } catch (err) {
      why = (err as Error).message.trim();
    }
  }
  return nodeSink(address, why);
}

/** posta's log lines from index `from` on, parsed as they come. */
class LogReader {
  private next: number;
  readonly accepted = new Map<string, number>();
  readonly delivered = new Map<string, number>();
  /** The "ms" of each delivered line: DNS lookup and SMTP transaction of one attempt. */
  readonly attemptMs: number[] = [];
  /** qid → the reply of its last deferral/bounce/expiry. */
  readonly failed = new Map<string, { event: string; reply: string }>();
  /** Warnings and errors by message, with a count and the first one seen. */
  readonly problems = new Map<string, { n: number; first: string }>();

  private readonly logs: string[];

  constructor(logs: string[], from: number) {
    this.logs = logs;
    this.next = from;
  }

  read(): void {
    for (; this.next < this.logs.length; this.next++) {
      let l: LogLine;
      try {
        l = JSON.parse(this.logs[this.next]!) as LogLine;
      } catch {
        this.problem('unparsable log line', this.logs[this.next]!);
        continue;
      }
      if (l.msg === 'accepted' && l.qid) this.accepted.set(l.qid, l.time);
      else if (l.msg === 'delivered' && l.qid) {
        this.delivered.set(l.qid, l.time);
        if (typeof l.ms === 'number') this.attemptMs.push(l.ms);
        this.failed.delete(l.qid);
      } else if (l.qid && ['deferred', 'bounced', 'expired'].includes(l.msg)) {
        this.failed.set(l.qid, { event: l.msg, reply: l.reply ?? '' });
      }
      if (l.level >= 40) this.problem(l.msg, this.logs[this.next]!);
    }
  }

  private problem(msg: string, line: string): void {
    const p = this.problems.get(msg);
    if (p) p.n++;
    else this.problems.set(msg, { n: 1, first: line });
  }

  /** Accepted qids that were neither delivered nor failed permanently. */
  pending(): number {
    let n = 0;
    for (const qid of this.accepted.keys()) {
      if (this.delivered.has(qid)) continue;
      const f = this.failed.get(qid);
      if (f && f.event !== 'deferred') continue;
      n++;
    }
    return n;
  }
}

async function runOne(
  s: TestServer,
  sink: Sink,
  sessions: number,
  seconds: number,
  drainSeconds: number,
): Promise<EndToEnd> {
  const log = new LogReader(s.logs, s.logs.length);
  const sinkBefore = sink.count();
  const cpuBefore = cpuSeconds(s.child.pid);
  const wallBefore = performance.now();
  const load = await measure('posta', s.host, s.ports.smtp, sessions, seconds);
  const loadEnd = Date.now();
  // the log lines come through a pipe: wait for every accepted line first
  for (let i = 0; i < 50 && log.accepted.size < load.messages; i++) {
    await sleep(100);
    log.read();
  }
  log.read();
  const backlog = [...log.accepted.keys()].filter((q) => !log.delivered.has(q)).length;
  const deadline = Date.now() + drainSeconds * 1000;
  while (Date.now() < deadline) {
    log.read();
    if (log.pending() === 0) break;
    await sleep(100);
  }
  const cpuAfter = cpuSeconds(s.child.pid);
  const wall = (performance.now() - wallBefore) / 1000;
  await sleep(300); // the sink's counter is printed when a session ends or a message is in
  log.read();

  const latencies: number[] = [];
  let last = 0;
  for (const [qid, at] of log.delivered) {
    last = Math.max(last, at);
    const accepted = log.accepted.get(qid);
    if (accepted !== undefined) latencies.push(at - accepted);
  }
  latencies.sort((a, b) => a - b);
  let first = Infinity;
  for (const at of log.accepted.values()) first = Math.min(first, at);
  const notes: string[] = [];
  if (load.note) notes.push(`at acceptance: ${load.note}`);
  if (log.accepted.size !== load.messages) {
    notes.push(`${load.messages} 250 replies but ${log.accepted.size} "accepted" log lines`);
  }
  const missing = [...log.accepted.keys()].filter((q) => !log.delivered.has(q));
  if (missing.length) {
    const byEvent = new Map<string, number>();
    for (const q of missing) {
      const f = log.failed.get(q);
      const k = f ? `${f.event}: ${f.reply}` : 'no attempt logged yet';
      byEvent.set(k, (byEvent.get(k) ?? 0) + 1);
    }
    notes.push(
      `${missing.length} not delivered after ${drainSeconds} s of drain: ` +
        [...byEvent].map(([k, n]) => `${n}× ${k}`).join('; '),
    );
  }
  for (const [msg, p] of log.problems) {
    notes.push(`log "${msg}" ×${p.n}, first: ${p.first.slice(0, 300)}`);
  }
  const sinkCount = sink.count() - sinkBefore;
  if (sinkCount !== log.delivered.size) {
    notes.push(`the sink counted ${sinkCount} messages, posta logged ${log.delivered.size}`);
  }
  return {
    server: 'posta',
    sessions,
    accepted: load.messages,
    acceptSeconds: load.seconds,
    delivered: log.delivered.size,
    deliverSeconds: last > first ? (last - first) / 1000 : NaN,
    backlog,
    drainSeconds: last > loadEnd ? (last - loadEnd) / 1000 : 0,
    sinkCount,
    cpu:
      cpuBefore === undefined || cpuAfter === undefined ? undefined : (cpuAfter - cpuBefore) / wall,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    attemptP50: pct(
      log.attemptMs.sort((a, b) => a - b),
      50,
    ),
    notes,
  };
}

/**
 * The same load through another relay: accepted from the load generator's
 * 250s, delivered from the sink's own counter, polled every 20 ms. The
 * relay's log is not read, so there are no per-message latencies.
 */
async function runPeer(
  relay: Relay,
  sink: Sink,
  sessions: number,
  seconds: number,
  drainSeconds: number,
): Promise<EndToEnd> {
  const before = sink.count();
  const cpuBefore = relay.cpuSeconds();
  const start = performance.now();
  let count = 0;
  let lastChange = start;
  const poll = () => {
    const c = sink.count() - before;
    if (c !== count) {
      count = c;
      lastChange = performance.now();
    }
  };
  const timer = setInterval(poll, 20);
  try {
    const load = await measure(relay.name, relay.host, relay.port, sessions, seconds);
    const loadEnd = performance.now();
    poll();
    const backlog = Math.max(0, load.messages - count);
    const deadline = Date.now() + drainSeconds * 1000;
    while (count < load.messages && Date.now() < deadline) await sleep(20);
    poll();
    const cpuAfter = relay.cpuSeconds();
    const wall = (performance.now() - start) / 1000;
    const notes: string[] = [];
    if (load.note) notes.push(`at acceptance: ${load.note}`);
    if (count < load.messages) {
      notes.push(`${load.messages - count} not at the sink after ${drainSeconds} s of drain`);
    }
    return {
      server: relay.name,
      sessions,
      accepted: load.messages,
      acceptSeconds: load.seconds,
      delivered: count,
      deliverSeconds: (lastChange - start) / 1000,
      backlog,
      drainSeconds: Math.max(0, (lastChange - loadEnd) / 1000),
      sinkCount: count,
      cpu:
        cpuBefore === undefined || cpuAfter === undefined
          ? undefined
          : (cpuAfter - cpuBefore) / wall,
      p50: NaN,
      p99: NaN,
      notes,
    };
  } finally {
    clearInterval(timer);
  }
}

/** Each peer that can run here, through the same sink and DNS; a note for each that cannot. */
async function runPeers(
  dns: string,
  sink: Sink,
  sessionsList: number[],
  seconds: number,
  drainSeconds: number,
): Promise<{ results: EndToEnd[]; notes: string[] }> {
  const results: EndToEnd[] = [];
  const notes: string[] = [];
  const [host, port] = dns.split(':');
  if (port !== '53') {
    // resolv.conf has no port
    return { results, notes: [`peers not run: their resolver needs DNS on port 53, not ${dns}`] };
  }
  for (const start of [startPostfixRelay, startChasquidRelay]) {
    let relay: Relay | string;
    try {
      relay = await start(host ?? '');
    } catch (err) {
      notes.push(`peer not run: ${(err as Error).message}`);
      continue;
    }
    if (typeof relay === 'string') {
      notes.push(`peer not run: ${relay}`);
      continue;
    }
    try {
      notes.push(`${relay.name} on ${relay.host}:${relay.port}: ${relay.durability}`);
      for (const n of sessionsList) {
        const r = await runPeer(relay, sink, n, seconds, drainSeconds);
        results.push(r);
        notes.push(...r.notes.map((x) => `${relay.name} N=${n}: ${x}`));
      }
    } catch (err) {
      notes.push(`${relay.name} run failed: ${(err as Error).message}`);
    } finally {
      await relay.stop();
    }
  }
  return { results, notes };
}

/** User + system CPU seconds of a process so far, from /proc (Linux); else undefined. */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in USER_HZ ticks
  } catch {
    return undefined;
  }
}

/** The attempts table of data/queue.db and what is still queued, after all runs. */
function queueSummary(s: TestServer): string {
  const db = new DatabaseSync(join(s.dir, 'data/queue.db'), { readOnly: true });
  try {
    const outcomes = db
      .prepare('SELECT outcome, count(*) AS n FROM attempts GROUP BY outcome ORDER BY outcome')
      .all() as { outcome: string; n: number }[];
    const queued = db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number };
    const attempts = outcomes.map((o) => `${o.n} ${o.outcome}`).join(', ') || 'none';
    return `queue.db after all runs: attempts ${attempts}; ${queued.n} messages still queued`;
  } finally {
    db.close();
  }
}

export interface EndToEndReport {
  header: string[];
  table: string;
  notes: string[];
}

export async function benchEndToEnd(
  sessionsList: number[],
  seconds: number,
  drainSeconds: number,
): Promise<EndToEndReport> {
  const address = randomLoopback();
  const sink = await startSink(address);
  const dns = await mxDns(address).catch(async (err: Error) => {
    await sink.stop();
    throw err;
  });
  let s: TestServer | undefined;
  try {
    s = await startServer({
      dns: dns.endpoint,
      extraToml: [
        '[limits]',
        `connections_per_ip = ${CONNECTIONS_PER_IP}`,
        '[delivery]',
        ...Object.entries(DELIVERY).map(([k, v]) => `${k} = ${v}`),
      ].join('\n'),
    });
    await addCatchAll(s, 'example.test', 'sink@dest.test');
    const results: EndToEnd[] = [];
    for (const n of sessionsList) results.push(await runOne(s, sink, n, seconds, drainSeconds));
    const notes = results.flatMap((r) => r.notes.map((n) => `posta N=${r.sessions}: ${n}`));
    notes.push(queueSummary(s));
    await s.stop(); // posta QUITs its idle sessions: the sink has seen them all end
    await sleep(300);
    const total = results.reduce((n, r) => n + r.sinkCount, 0);
    notes.push(
      `the sink received posta's ${total} messages in ${sink.sessions()} SMTP sessions ` +
        `(${(total / Math.max(1, sink.sessions())).toFixed(1)} per session)`,
    );
    const peers = await runPeers(dns.endpoint, sink, sessionsList, seconds, drainSeconds);
    results.push(...peers.results);
    notes.push(...peers.notes);
    const dash = (n: number | undefined) =>
      n === undefined || Number.isNaN(n) ? '-' : n.toFixed(0);
    const rows = [
      [
        'server',
        'sessions',
        'accepted',
        'acc msg/s',
        'delivered',
        'dlv msg/s',
        'backlog',
        'drain s',
        'e2e p50 ms',
        'e2e p99 ms',
        'attempt p50 ms',
        'cpu',
      ],
      ...results.map((r) => [
        r.server,
        String(r.sessions),
        String(r.accepted),
        (r.accepted / r.acceptSeconds).toFixed(0),
        String(r.delivered),
        (r.delivered / r.deliverSeconds).toFixed(0),
        String(r.backlog),
        r.drainSeconds.toFixed(1),
        dash(r.p50),
        dash(r.p99),
        dash(r.attemptP50),
        r.cpu === undefined ? '-' : `${(r.cpu * 100).toFixed(0)}%`,
      ]),
    ];
    return {
      header: [
        `receiver: ${address}:25, ${sink.name}; the MX of dest.test, from ${dns.name} on ${dns.endpoint}`,
        `[delivery] ${Object.entries(DELIVERY)
          .map(([k, v]) => `${k} = ${v}`)
          .join(', ')} (0 = unlimited); [limits] connections_per_ip = ${CONNECTIONS_PER_IP}; ` +
          `other [delivery] keys at their defaults (mta_sts on, ip_family prefer-ipv6)`,
      ],
      table: columns(rows, [0]),
      notes,
    };
  } finally {
    await s?.stop();
    dns.stop();
    await sink.stop();
  }
}
