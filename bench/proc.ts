/**
 * What a server costs, read from /proc (Linux): CPU time and PSS of its whole
 * process tree, and its fsync/fdatasync calls counted by strace.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** The pids under `root` (children of children), `root` included. */
export function tree(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    const pid = out[i]!;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        const c = readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
        if (c) out.push(...c.split(' ').map(Number));
      } catch {
        // gone
      }
    }
  }
  return out;
}

/** utime + stime + cutime + cstime of one process, in seconds (cutime holds the reaped children). */
function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100; // USER_HZ
  } catch {
    return 0;
  }
}

/** Pss of one process in bytes, from smaps_rollup. */
function pssOf(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * A server's processes: each root is a `strace` whose tracee is the server
 * (strace itself is left out of the sums).
 */
export class Tree {
  readonly roots: ChildProcess[];
  private readonly others: () => number[];
  /**
   * `roots` run under strace (their first process is strace, left out);
   * `others` gives more processes to count with all they start (a database
   * server that daemonized).
   */
  constructor(roots: ChildProcess[], others: () => number[] = () => []) {
    this.roots = roots;
    this.others = others;
  }
  pids(): number[] {
    return [
      ...this.roots.flatMap((r) => (r.pid === undefined ? [] : tree(r.pid).slice(1))),
      ...this.others().flatMap((p) => tree(p)),
    ];
  }
  cpuSeconds(): number {
    return this.pids().reduce((s, p) => s + cpuOf(p), 0);
  }
  pss(): number {
    return this.pids().reduce((s, p) => s + pssOf(p), 0);
  }
}

/** Samples a tree's PSS every `ms` until stopped; returns the peak. */
export function pssSampler(t: Tree, ms = 250): { stop(): number } {
  let peak = t.pss();
  const timer = setInterval(() => (peak = Math.max(peak, t.pss())), ms);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, t.pss());
    },
  };
}

/**
 * Spawns `argv` under strace, which writes each fsync and fdatasync call of
 * the whole tree to `log` (seccomp-bpf: only those calls stop the tracee, so
 * the rest runs at full speed). `prefix` (taskset -c 0, say) goes between
 * strace and argv.
 */
export function traced(
  argv: string[],
  log: string,
  opts: { env?: NodeJS.ProcessEnv; prefix?: string[] } = {},
): { child: ChildProcess; fsyncs: () => number } {
  const child = spawn(
    'strace',
    ['-f', '--seccomp-bpf', '-qq', '-e', 'trace=fsync,fdatasync', '-o', log, '--']
      .concat(opts.prefix ?? [])
      .concat(argv),
    { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return {
    child,
    fsyncs: () => {
      let text = '';
      try {
        text = readFileSync(log, 'utf8');
      } catch {
        return 0;
      }
      // "PID fsync(5) = 0", or "PID fsync(5 <unfinished ...>" and later "<... fsync resumed>": one call
      return text.match(/^\d+ +(fsync|fdatasync)\(/gm)?.length ?? 0;
    },
  };
}
