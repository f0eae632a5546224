/**
 * Real Postfix and chasquid as peers of the end-to-end bench: each is started
 * from the files `dpkg -x` unpacked under bench/.peers (nothing installed,
 * nothing started at boot), listens on a loopback address, and forwards every
 * message to rcpt@example.test on to sink@dest.test, as posta's catch-all
 * does. Both look up dest.test's MX through the system resolver, so each runs
 * in its own mount namespace where /etc/resolv.conf names the bench's DNS
 * server: that needs root (`unshare -m`), as binding port 25 does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCert } from '../test/helpers/certs.ts';
import { freePort, randomLoopback } from '../test/helpers/net.ts';
import { ROOT } from '../test/helpers/posta.ts';
import { postfixRoot, waitForPort } from './load.ts';

/** A relay under load: the bench sends to host:port and counts at the sink. */
export interface Relay {
  name: string;
  host: string;
  port: number;
  /** How it stores an accepted message, for the reader of the figures. */
  durability: string;
  /** CPU seconds of the relay's processes so far (Linux), or undefined. */
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

/** Why a peer cannot run here, or undefined when it can. */
function needsRoot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (unshare -m for its resolv.conf, port 25)';
  return undefined;
}

/** The chasquid binary: $CHASQUID, bench/.peers/chasquid (dpkg -x), or PATH. */
export function chasquidBinary(): string | undefined {
  const candidates = [
    process.env.CHASQUID,
    join(ROOT, 'bench/.peers/chasquid/usr/bin/chasquid'),
    ...(process.env.PATH ?? '').split(':').map((d) => d && join(d, 'chasquid')),
  ];
  return candidates.find((c) => c && existsSync(c)) || undefined;
}

/** Runs `argv` in a new mount namespace whose /etc/resolv.conf points at `dns`. */
function withResolver(dir: string, dns: string, argv: string[], env: NodeJS.ProcessEnv) {
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, `nameserver ${dns}\noptions attempts:1 timeout:2\n`);
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  // unshare and sh both exec: the child's pid is the server's own
  return spawn(
    'unshare',
    ['-m', 'sh', '-c', `mount --bind '${resolv}' /etc/resolv.conf && exec ${quoted}`],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

async function started(child: ChildProcess, host: string, port: number, what: string) {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.resume();
  await waitForPort(host, port, () => child.exitCode !== null).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${what} did not start on ${host}:${port} (${err.message}): ${stderr.trim()}`);
  });
}

function stopper(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  };
}

/** CPU seconds of a process, its reaped children and its live descendants, from /proc. */
function treeCpu(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime in USER_HZ ticks
    let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    for (const c of children ? children.split(' ') : []) ticks += (treeCpu(Number(c)) ?? 0) * 100;
    return ticks / 100;
  } catch {
    return undefined;
  }
}

function passwdId(file: string, name: string): number | undefined {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  return line === undefined ? undefined : Number(line.split(':')[2]);
}

/**
 * Postfix 3.x (master, smtpd, cleanup, qmgr, smtp) relaying through a
 * virtual alias. No postfix user is created: mail_owner is Debian's `mail`
 * user and the queue lives in a temporary folder. The settings that differ
 * from Postfix's defaults are the ones posta's run also sets: 32 connections
 * per destination.
 */
export async function startPostfixRelay(dns: string): Promise<Relay | string> {
  const root = postfixRoot();
  if (!root) return 'Postfix not found (see "Peers" in bench/README.md)';
  const noRoot = needsRoot();
  if (noRoot) return `Postfix ${noRoot}`;
  const mailUid = passwdId('/etc/passwd', 'mail');
  const nogroup = passwdId('/etc/group', 'nogroup');
  if (mailUid === undefined || nogroup === undefined) {
    return 'Postfix needs the system user "mail" and group "nogroup"';
  }
  const dir = await mkdtemp(join(tmpdir(), 'posta-bench-postfix-'));
  chmodSync(dir, 0o755);
  const host = randomLoopback();
  const port = await freePort(host);
  const lib = join(root, 'usr/lib/postfix');
  const queue = join(dir, 'queue');
  // Postfix's own layout (its postfix-files): owner, group and mode per folder
  const layout: [string, number, number, number][] = [
    [queue, 0, -1, 0o755],
    [join(queue, 'pid'), 0, -1, 0o755],
    [join(queue, 'maildrop'), mailUid, nogroup, 0o730],
    [join(queue, 'public'), mailUid, nogroup, 0o710],
    [join(dir, 'data'), mailUid, -1, 0o700],
    [join(dir, 'conf'), 0, -1, 0o755],
    ...['active', 'bounce', 'corrupt', 'defer', 'deferred', 'flush', 'hold']
      .concat(['incoming', 'private', 'saved', 'trace'])
      .map((d): [string, number, number, number] => [join(queue, d), mailUid, -1, 0o700]),
  ];
  for (const [path, uid, gid, mode] of layout) {
    mkdirSync(path);
    chownSync(path, uid, gid);
    chmodSync(path, mode); // mkdir's mode is cut by the umask
  }
  writeFileSync(
    join(dir, 'conf/main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${queue}`,
      `data_directory = ${join(dir, 'data')}`,
      `command_directory = ${join(root, 'usr/sbin')}`,
      `daemon_directory = ${join(lib, 'sbin')}`,
      `shlib_directory = ${lib}`,
      `meta_directory = ${join(root, 'etc/postfix')}`,
      'mail_owner = mail',
      'setgid_group = nogroup',
      'default_privs = daemon',
      'myhostname = relay.bench.test',
      'mydestination =',
      'inet_interfaces = loopback-only',
      'inet_protocols = ipv4',
      'mynetworks = 127.0.0.0/8',
      'alias_maps =',
      'virtual_alias_domains = example.test',
      'virtual_alias_maps = inline:{ rcpt@example.test=sink@dest.test }',
      `maillog_file_prefixes = ${dir}`,
      `maillog_file = ${join(dir, 'maillog')}`,
      `import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH=${lib}`,
      'smtp_tls_security_level = may',
      'default_destination_concurrency_limit = 32',
      '',
    ].join('\n'),
  );
  const services = [
    `${host}:${port} inet n - n - - smtpd`,
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'tlsmgr unix - - n 1000? 1 tlsmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
  ];
  writeFileSync(join(dir, 'conf/master.cf'), `${services.join('\n')}\n`);
  const child = withResolver(dir, dns, [join(lib, 'sbin/master'), '-c', join(dir, 'conf'), '-d'], {
    ...process.env,
    LD_LIBRARY_PATH: lib,
  });
  try {
    await started(child, host, port, 'Postfix');
  } catch (err) {
    const log = existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : '';
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message} ${log.trim().split('\n').slice(-3).join(' / ')}`);
  }
  return {
    name: 'postfix 3.7',
    host,
    port,
    durability: 'queue file fsync before the 250',
    cpuSeconds: () => treeCpu(child.pid),
    stop: stopper(child, dir),
  };
}

/** chasquid forwarding rcpt@example.test through its aliases file; local mail to /bin/true. */
export async function startChasquidRelay(dns: string): Promise<Relay | string> {
  const binary = chasquidBinary();
  if (!binary) return 'chasquid not found (see "Peers" in bench/README.md)';
  const noRoot = needsRoot();
  if (noRoot) return `chasquid ${noRoot}`;
  const dir = await mkdtemp(join(tmpdir(), 'posta-bench-chasquid-'));
  const host = randomLoopback();
  const [smtp, submission, submissions] = [
    await freePort(host),
    await freePort(host),
    await freePort(host),
  ];
  const conf = join(dir, 'conf');
  mkdirSync(join(conf, 'domains/example.test'), { recursive: true });
  mkdirSync(join(conf, 'certs'), { recursive: true });
  // chasquid wants certs/NAME/{fullchain,privkey}.pem
  const certDir = join(conf, 'certs/relay.bench.test');
  mkdirSync(certDir);
  const cert = await makeCert(dir, 'relay.bench.test');
  writeFileSync(join(certDir, 'fullchain.pem'), readFileSync(cert.cert));
  writeFileSync(join(certDir, 'privkey.pem'), readFileSync(cert.key));
  writeFileSync(join(conf, 'domains/example.test/aliases'), 'rcpt: sink@dest.test\n');
  writeFileSync(
    join(conf, 'chasquid.conf'),
    [
      'hostname: "relay.bench.test"',
      `smtp_address: "${host}:${smtp}"`,
      `submission_address: "${host}:${submission}"`,
      `submission_over_tls_address: "${host}:${submissions}"`,
      `data_dir: "${join(dir, 'data')}"`,
      `mail_log_path: "${join(dir, 'mail.log')}"`,
      'mail_delivery_agent_bin: "/bin/true"',
      '',
    ].join('\n'),
  );
  const child = withResolver(
    dir,
    dns,
    [binary, '-config_dir', conf, '-logfile', join(dir, 'chasquid.log')],
    process.env,
  );
  try {
    await started(child, host, smtp, 'chasquid');
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    name: 'chasquid 1.11',
    host,
    port: smtp,
    durability: 'queue file written and renamed before the 250, no fsync (seen with strace)',
    cpuSeconds: () => treeCpu(child.pid),
    stop: stopper(child, dir),
  };
}
