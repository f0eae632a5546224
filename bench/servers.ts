/**
 * The servers under test, each whole and on its own loopback address inside
 * the bench's network namespace, each started under strace (bench/proc.ts):
 * posta, Postfix 3.7 as a relay, Postfix 3.7 with OpenDKIM as a milter, and
 * chasquid 1.11. Every one forwards to sink@dest.test, whose MX the bench's
 * DNS server names; the peers resolve it through /etc/resolv.conf, which the
 * bench has bound to its own in its mount namespace. The peers come from
 * Debian packages unpacked under bench/.peers by bench/setup.sh.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCert } from '../test/helpers/certs.ts';
import { POSTA, ROOT, initFolder, posta } from '../test/helpers/posta.ts';
import { postgresBin, startPostgres } from '../test/helpers/postgres.ts';
import { Tree, traced, tree } from './proc.ts';
import { runLoad, waitForPort, type Load } from './load.ts';

export const PEERS = process.env.BENCH_PEERS ?? join(ROOT, 'bench/.peers');
export const PASSWORD = 'correct horse battery';
/** The account every server's submission port takes, and the sender of its mail. */
export const USER = 'i@example.test';

/**
 * The mail of each mode: on submission STARTTLS (+ AUTH when given) from the
 * account to sink@dest.test; on port 25 plaintext to the forwarded address.
 */
export function modeMail(
  submission: boolean,
  auth?: Server['auth'],
): Pick<Load, 'tls' | 'auth' | 'from' | 'to'> {
  return submission
    ? { tls: true, auth, from: USER, to: 'sink@dest.test' }
    : { tls: false, from: 'bench@remote.example', to: 'rcpt@example.test' };
}

export interface Server {
  name: string;
  host: string;
  /** All its addresses when it is a cluster (the load is spread over them); else host alone. */
  hosts?: string[];
  /** Port 25 (relaying rcpt@example.test to sink@dest.test), when this server is in that mode. */
  smtp?: number;
  /** Submission, when this server is in that mode. */
  submission?: number;
  /** AUTH on submission; absent when the server takes submission without it (labelled). */
  auth?: { user: string; password: string };
  /** How it stores an accepted message and anything else a reader of the figures needs. */
  notes: string[];
  tree: Tree;
  fsyncs(): number;
  /** Warnings and errors the server logged so far (posta only). */
  problems(): string[];
  stop(): Promise<void>;
}

async function started(child: ChildProcess, host: string, port: number, what: string) {
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  await waitForPort(host, port, () => child.exitCode !== null).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${what} did not start on ${host}:${port} (${err.message}): ${stderr.trim()}`);
  });
}

/** Stops the servers, then removes `dir` if given. */
async function stopAll(children: ChildProcess[], dir?: string): Promise<void> {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // the server is strace's child: stop it, and strace exits with it
    const server = child.pid === undefined ? [] : tree(child.pid).slice(1, 2);
    for (const pid of server) process.kill(pid, 'SIGTERM');
    if (!server.length) child.kill('SIGTERM');
    await Promise.race([exited, sleep(8000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}

function passwdId(file: string, name: string): number {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (line === undefined) throw new Error(`${file} has no "${name}"`);
  return Number(line.split(':')[2]);
}

export interface PostaOptions {
  host: string;
  name: string;
  /** taskset -c CPUS, when given. */
  cpus?: string;
  /** [inbound] checks = false, and port 25 only. */
  checks?: false;
  /** The queue on PostgreSQL: [storage] url (its password goes in the environment) as node `node`. */
  storage?: { url: string; node: string };
}

/**
 * `posta serve` as `posta init` sets it up (DKIM RSA-2048 + Ed25519, fsync
 * on), with a catch-all alias *@example.test → sink@dest.test for port 25,
 * the bench's DNS server, and limits raised so one client address may open
 * every session and the idle connections.
 */
export async function startPosta(o: PostaOptions): Promise<Server> {
  const { dir } = await initFolder('example.test');
  let storage: { url: string; node: string } | undefined;
  const env: Record<string, string> = {};
  if (o.storage) {
    const u = new URL(o.storage.url);
    env.POSTA_STORAGE_PASSWORD = decodeURIComponent(u.password);
    u.password = '';
    storage = { url: u.toString(), node: o.storage.node };
  }
  const { cert, key } = await makeCert(dir, 'mail.example.test');
  writeFileSync(
    join(dir, 'posta.toml'),
    [
      'hostname = "mail.example.test"',
      '[listen]',
      `smtp = ["${o.host}:25"]`,
      `submission = ["${o.host}:587"]`,
      'submissions = []',
      'http = []',
      'https = []',
      '[dns]',
      `servers = ["${DNS_ADDRESS}:53"]`,
      '[tls]',
      `cert = "${cert}"`,
      `key = "${key}"`,
      '[limits]',
      'connections = 1200',
      'connections_per_ip = 1200',
      'connections_per_prefix = 1200',
      ...(o.checks === false ? ['[inbound]', 'checks = false'] : []),
      '[delivery]',
      'concurrency = 64',
      'connections_per_domain = 32',
      ...(storage ? ['[storage]', `url = "${storage.url}"`, `node = "${storage.node}"`] : []),
      '',
    ].join('\n'),
  );
  for (const args of [
    ['user', 'add', USER, '--password', PASSWORD],
    ['alias', 'add', '*@example.test', 'sink@dest.test'],
  ]) {
    const r = await posta([...args, '--dir', dir]);
    if (r.code !== 0) throw new Error(`posta ${args[0]} add failed: ${r.stderr}`);
  }
  // First a run as after installing: it fills data/compile-cache, as any
  // posta has it from its second start on (src/compile-cache.ts).
  const first = await launch(dir, join(dir, 'first.strace'), o.cpus, env);
  for (const submission of [true, false]) {
    await runLoad({
      host: o.host,
      port: submission ? 587 : 25,
      sessions: 1,
      seconds: 1,
      bytes: 5120,
      perConnection: 10,
      ...modeMail(submission, { user: USER, password: PASSWORD }),
    });
  }
  await sleep(2000); // the deliveries
  await stopAll([first.t.child]);
  const { t, problems } = await launch(dir, join(dir, 'fsync.strace'), o.cpus, env);
  return {
    name: o.name,
    host: o.host,
    smtp: 25,
    submission: o.checks === false ? undefined : 587,
    auth: { user: USER, password: PASSWORD },
    notes: [
      (storage
        ? 'the 250 after the commit to PostgreSQL (synchronous_commit = on, group commit); '
        : 'the 250 after the commit to data/queue.db and an fdatasync of its WAL (group commit); ') +
        'started a second time, as after a restart, and with NODE_COMPILE_CACHE as its systemd unit ' +
        'sets it (the first run fills the cache); ' +
        (o.checks === false
          ? 'port 25 with [inbound] checks = false: no SPF/DKIM/DMARC/ARC checks, no ARC seal'
          : 'DKIM RSA-2048 + Ed25519 on submission; SPF/DKIM/DMARC/ARC checks and an ARC seal on port 25'),
    ],
    tree: new Tree([t.child]),
    fsyncs: t.fsyncs,
    problems: () => problems,
    stop: () => stopAll([t.child], join(dir, '..')),
  };
}

/**
 * `nodes` posta nodes (startPosta, each on its own address of `hosts`) on one
 * queue in a PostgreSQL server of their own (test/helpers/postgres.ts:
 * initdb as the postgres user, fsync and synchronous_commit on), as one
 * server: the load is spread over the nodes, and its CPU and memory are the
 * nodes' and PostgreSQL's together. PostgreSQL's fsyncs are not traced.
 */
export async function startPostaCluster(nodes: number, hosts: string[]): Promise<Server> {
  const pg = await startPostgres();
  const started: Server[] = [];
  try {
    for (let i = 0; i < nodes; i++) {
      const host = hosts[i];
      if (!host) throw new Error(`no address for node ${i + 1}`);
      started.push(
        await startPosta({ host, name: `n${i + 1}`, storage: { url: pg.url, node: `n${i + 1}` } }),
      );
    }
  } catch (err) {
    for (const s of started) await s.stop();
    await pg.stop();
    throw err;
  }
  const pid = () => {
    const p = pg.pid();
    return p === null ? [] : [p];
  };
  return {
    name: `posta pg ×${nodes}`,
    host: started[0]!.host,
    hosts: started.map((s) => s.host),
    smtp: 25,
    submission: 587,
    auth: { user: USER, password: PASSWORD },
    notes: [
      `${nodes} node${nodes === 1 ? '' : 's'} on one PostgreSQL ${postgresBin()?.split('/').at(-2) ?? ''} queue on this machine, the load spread over them; ` +
        "CPU and PSS are the nodes' and PostgreSQL's; fsync/msg counts the nodes' only (PostgreSQL is not traced)",
      ...(started[0]?.notes ?? []),
    ],
    tree: new Tree(
      started.flatMap((s) => s.tree.roots),
      pid,
    ),
    fsyncs: () => started.reduce((n, s) => n + s.fsyncs(), 0),
    problems: () => started.flatMap((s) => s.problems()),
    stop: async () => {
      for (const s of started) await s.stop();
      await pg.stop();
    },
  };
}

/** `posta serve` on `dir` under strace, once it is ready. */
async function launch(
  dir: string,
  log: string,
  cpus: string | undefined,
  extraEnv: Record<string, string> = {},
): Promise<{ t: ReturnType<typeof traced>; problems: string[] }> {
  const t = traced([POSTA, 'serve', '--dir', dir], log, {
    prefix: cpus ? ['taskset', '-c', cpus] : [],
    // as the systemd unit (contrib/posta.service) starts it
    env: {
      ...process.env,
      ...extraEnv,
      NODE_COMPILE_CACHE: join(dir, 'data/compile-cache'),
      // a CPU profile per thread of each posta, written when it stops
      ...(process.env.BENCH_POSTA_CPU_PROF
        ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${process.env.BENCH_POSTA_CPU_PROF}` }
        : {}),
    },
  });
  const problems: string[] = [];
  let stderr = '';
  t.child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    t.child.once('exit', (code) => reject(new Error(`posta serve exited with ${code}: ${stderr}`)));
    createInterface({ input: t.child.stdout! }).on('line', (line) => {
      if (line.includes('"msg":"ready"')) resolve();
      else if (/"level":(40|50|60)/.test(line) && problems.length < 20) problems.push(line);
    });
  });
  return { t, problems };
}

/** The unpacked Postfix, or why it is missing. */
function postfixRoot(): string {
  const root = join(PEERS, 'postfix');
  if (!existsSync(join(root, 'usr/sbin/smtp-sink'))) {
    throw new Error(`Postfix is not unpacked under ${PEERS}: run bench/setup.sh`);
  }
  return root;
}

/**
 * Postfix 3.7 (master, smtpd, cleanup, qmgr, smtp) as Postfix's defaults
 * have it (queue files fsync'd before the 250), with no postfix user:
 * mail_owner is Debian's `mail` and the queue is in a temporary folder.
 * Port 25 relays rcpt@example.test through a virtual alias; 587 wants
 * STARTTLS, then relays for mynetworks without AUTH (see the note below). With `dkim`, OpenDKIM runs as a
 * milter on 587 signing RSA-2048 for example.test.
 */
export async function startPostfix(host: string, dkim: boolean): Promise<Server> {
  const root = postfixRoot();
  const mailUid = passwdId('/etc/passwd', 'mail');
  const nogroup = passwdId('/etc/group', 'nogroup');
  const dir = await mkdtemp(join(tmpdir(), 'posta-bench-postfix-'));
  chmodSync(dir, 0o755);
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
  const { cert, key } = await makeCert(dir, 'relay.bench.test');
  chmodSync(key, 0o644);
  const children: ChildProcess[] = [];
  const fsyncs: (() => number)[] = [];
  const notes = [
    'queue file fsync before the 250 (Postfix default)',
    'NO AUTH on 587: STARTTLS required, then relaying by permit_mynetworks (Cyrus SASL with a ' +
      'sasldb from the unpacked sasl2-bin kept answering "Password verification failed": ' +
      'smtpd did not read cyrus_sasl_config_path), so Postfix does a little less per session',
  ];
  // a unix socket, as Debian's opendkim package sets it up: over TCP the
  // milter's small writes meet Nagle and delayed ACKs (~90 ms a message seen)
  const milterSocket = join(dir, 'opendkim.sock');
  const milter = `unix:${milterSocket}`;
  if (dkim) {
    const od = join(PEERS, 'opendkim');
    if (!existsSync(join(od, 'usr/sbin/opendkim'))) {
      throw new Error(`OpenDKIM is not unpacked under ${PEERS}: run bench/setup.sh`);
    }
    const dkimKey = join(dir, 'dkim.private');
    execFileSync('openssl', ['genrsa', '-out', dkimKey, '2048'], { stdio: 'ignore' });
    chmodSync(dkimKey, 0o600);
    const conf = join(dir, 'opendkim.conf');
    writeFileSync(
      conf,
      [
        'Syslog no',
        'Mode s',
        'Domain example.test',
        'Selector bench',
        `KeyFile ${dkimKey}`,
        `Socket local:${milterSocket}`,
        'UMask 000',
        'InternalHosts 127.0.0.0/8',
        'Canonicalization relaxed/simple',
        'RequireSafeKeys false',
        `PidFile ${join(dir, 'opendkim.pid')}`,
        '',
      ].join('\n'),
    );
    const t = traced([join(od, 'usr/sbin/opendkim'), '-f', '-x', conf], join(dir, 'od.strace'), {
      env: { ...process.env, LD_LIBRARY_PATH: join(od, 'usr/lib/x86_64-linux-gnu') },
    });
    children.push(t.child);
    fsyncs.push(t.fsyncs);
    for (let i = 0; i < 200 && !existsSync(milterSocket); i++) {
      if (t.child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (!existsSync(milterSocket)) throw new Error(`OpenDKIM did not create ${milterSocket}`);
    notes.push('OpenDKIM 2.11 as a milter on 587 (unix socket), signing RSA-2048 relaxed/simple');
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
      `smtpd_tls_cert_file = ${cert}`,
      `smtpd_tls_key_file = ${key}`,
      'smtp_tls_security_level = may',
      'default_destination_concurrency_limit = 32',
      'milter_default_action = tempfail',
      '',
    ].join('\n'),
  );
  const submission = [
    `${host}:587 inet n - n - 1100 smtpd`,
    '  -o smtpd_tls_security_level=encrypt',
    '  -o smtpd_relay_restrictions=permit_mynetworks,reject',
    ...(dkim ? [`  -o smtpd_milters=${milter}`] : []),
  ];
  const services = [
    ...(dkim ? [] : [`${host}:25 inet n - n - - smtpd`]),
    ...submission,
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
  const t = traced(
    [join(lib, 'sbin/master'), '-c', join(dir, 'conf'), '-d'],
    join(dir, 'pf.strace'),
    {
      env: { ...process.env, LD_LIBRARY_PATH: lib },
    },
  );
  children.unshift(t.child);
  fsyncs.push(t.fsyncs);
  try {
    await started(t.child, host, 587, 'Postfix');
  } catch (err) {
    const log = existsSync(join(dir, 'maillog')) ? readFileSync(join(dir, 'maillog'), 'utf8') : '';
    await stopAll(children, dir);
    throw new Error(`${(err as Error).message} ${log.trim().split('\n').slice(-3).join(' / ')}`);
  }
  notes.push('submission maxproc 1100 (default 100) so it can hold the idle TLS connections');
  return {
    name: dkim ? 'postfix+opendkim' : 'postfix 3.7',
    host,
    smtp: dkim ? undefined : 25,
    submission: 587,
    notes,
    tree: new Tree(children),
    fsyncs: () => fsyncs.reduce((n, f) => n + f(), 0),
    problems: () => {
      const log = existsSync(join(dir, 'maillog'))
        ? readFileSync(join(dir, 'maillog'), 'utf8')
        : '';
      return log
        .split('\n')
        .filter((l) => /warning|error|fatal|panic/.test(l))
        .slice(0, 5);
    },
    stop: () => stopAll(children, dir),
  };
}

/** chasquid 1.11 with its submission port (STARTTLS + AUTH, users from chasquid-util). */
export async function startChasquid(host: string): Promise<Server> {
  const bin = join(PEERS, 'chasquid/usr/bin');
  if (!existsSync(join(bin, 'chasquid'))) {
    throw new Error(`chasquid is not unpacked under ${PEERS}: run bench/setup.sh`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'posta-bench-chasquid-'));
  const conf = join(dir, 'conf');
  mkdirSync(join(conf, 'domains/example.test'), { recursive: true });
  // chasquid wants certs/NAME/{fullchain,privkey}.pem
  const certDir = join(conf, 'certs/relay.bench.test');
  mkdirSync(certDir, { recursive: true });
  const cert = await makeCert(dir, 'relay.bench.test');
  writeFileSync(join(certDir, 'fullchain.pem'), readFileSync(cert.cert));
  writeFileSync(join(certDir, 'privkey.pem'), readFileSync(cert.key));
  writeFileSync(join(conf, 'domains/example.test/aliases'), 'rcpt: sink@dest.test\n');
  writeFileSync(
    join(conf, 'chasquid.conf'),
    [
      'hostname: "relay.bench.test"',
      `smtp_address: "${host}:25"`,
      `submission_address: "${host}:587"`,
      `submission_over_tls_address: "${host}:465"`,
      `data_dir: "${join(dir, 'data')}"`,
      `mail_log_path: "${join(dir, 'mail.log')}"`,
      'mail_delivery_agent_bin: "/bin/true"',
      '',
    ].join('\n'),
  );
  execFileSync(join(bin, 'chasquid-util'), [
    `-C=${conf}`,
    'user-add',
    USER,
    `--password=${PASSWORD}`,
  ]);
  const t = traced(
    [join(bin, 'chasquid'), '-config_dir', conf, '-logfile', join(dir, 'chasquid.log')],
    join(dir, 'fsync.strace'),
  );
  await started(t.child, host, 587, 'chasquid');
  return {
    name: 'chasquid 1.11',
    host,
    submission: 587,
    auth: { user: USER, password: PASSWORD },
    notes: ['queue file written and renamed before the 250, no fsync'],
    tree: new Tree([t.child]),
    fsyncs: t.fsyncs,
    problems: () => [],
    stop: () => stopAll([t.child], dir),
  };
}

export const DNS_ADDRESS = '127.0.0.53';
export const SINK_ADDRESS = '127.0.0.25';
