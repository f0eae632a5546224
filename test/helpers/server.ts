/**
 * A real `posta serve` for end-to-end tests: a fresh config folder made with
 * `posta init`, a self-signed certificate from openssl, listeners on a random
 * loopback address and free ports, an account with a known password.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline';
import { POSTA, initFolder, posta } from './posta.ts';
import { makeCert } from './certs.ts';
import { freePort, randomLoopback } from './net.ts';

const execFileP = promisify(execFile);

export interface TestServer {
  dir: string;
  host: string;
  /** http is 0 unless the server was started with `http: true`. */
  ports: { smtp: number; submission: number; submissions: number; http: number };
  user: string;
  password: string;
  certFile: string;
  /** Log lines (JSON) printed so far. */
  logs: string[];
  child: ChildProcess;
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Start `posta serve` again on the same folder and ports (after a crash). */
  restart(): Promise<void>;
  /**
   * Runs `change` (a `posta alias add`, say) and waits until the server has
   * re-read the config folder after it.
   */
  reload(change: () => Promise<unknown>): Promise<void>;
  /**
   * The log lines from index `from` on that contain `text`, once there is one
   * (at most `ms`, generous: a CI machine under load is slow).
   */
  logged(from: number, text: string, ms?: number): Promise<string[]>;
}

export async function startServer(
  opts: {
    domain?: string;
    extraToml?: string;
    /**
     * The DNS server posta asks ("ADDRESS:PORT"). By default a closed port on
     * loopback: every lookup fails as temporary, so accepted mail stays in the
     * queue and no query ever leaves the machine.
     */
    dns?: string;
    /** Extra environment for the posta process (NODE_EXTRA_CA_CERTS, say). */
    env?: Record<string, string>;
    /** Listen for HTTPS (MTA-STS, tls-alpn-01) on HOST:443. */
    https?: boolean;
    /** Listen for HTTP (/metrics) on HOST and a free port (ports.http). */
    http?: boolean;
    /**
     * The certificate: by default [tls] with a fresh self-signed one for
     * mail.DOMAIN; a string is written instead (an [acme] section, or [tls]
     * naming other files).
     */
    certificate?: string;
    /** The loopback address to listen on; random by default. */
    host?: string;
    /**
     * Run `posta serve` as the user nobody, with the config folder given to
     * it (as `posta install-service` gives it to its service user).
     */
    asNobody?: boolean;
    /** A command in front of `posta serve` (strace and its options, say). */
    wrap?: string[];
  } = {},
): Promise<TestServer> {
  const domain = opts.domain ?? 'example.test';
  const { dir } = await initFolder(domain);
  const host = opts.host ?? randomLoopback();
  // each free when asked, but the kernel may hand the same one out twice
  const taken = new Set<number>();
  const port = async (): Promise<number> => {
    for (;;) {
      const p = await freePort(host);
      if (!taken.has(p)) return (taken.add(p), p);
    }
  };
  const ports = {
    smtp: await port(),
    submission: await port(),
    submissions: await port(),
    http: opts.http ? await port() : 0,
  };
  const { cert, key } = await makeCert(dir, `mail.${domain}`);
  await writeFile(
    join(dir, 'posta.toml'),
    [
      `hostname = "mail.${domain}"`,
      '[listen]',
      `smtp = ["${host}:${ports.smtp}"]`,
      `submission = ["${host}:${ports.submission}"]`,
      `submissions = ["${host}:${ports.submissions}"]`,
      opts.http ? `http = ["${host}:${ports.http}"]` : 'http = []',
      opts.https ? `https = ["${host}:443"]` : 'https = []',
      '[dns]',
      `servers = ["${opts.dns ?? '127.0.0.1:9'}"]`,
      opts.certificate ?? ['[tls]', `cert = "${cert}"`, `key = "${key}"`].join('\n'),
      opts.extraToml ?? '',
    ].join('\n'),
  );
  const user = `i@${domain}`;
  const password = 'correct horse battery';
  const added = await posta(['user', 'add', user, '--password', password, '--dir', dir]);
  if (added.code !== 0) throw new Error(added.stderr);
  if (opts.asNobody) await execFileP('chown', ['-R', 'nobody:nogroup', dirname(dir)]);
  const serveOpts = { env: opts.env, asNobody: opts.asNobody, wrap: opts.wrap };
  const server: TestServer = {
    dir,
    host,
    ports,
    user,
    password,
    certFile: cert,
    logs: [],
    child: undefined as unknown as ChildProcess,
    async stop(signal = 'SIGTERM') {
      const child = server.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill(signal);
      });
    },
    async restart() {
      server.child = await spawnServe(dir, server.logs, serveOpts);
    },
    async reload(change) {
      const from = server.logs.length;
      await change();
      const done = await server.logged(from, '"msg":"config folder reloaded"');
      if (!done.length) throw new Error('the server did not re-read the config folder within 60 s');
    },
    async logged(from, text, ms = 60_000) {
      const lines = () => server.logs.slice(from).filter((l) => l.includes(text));
      for (let i = 0; i < ms / 50 && lines().length === 0; i++) await sleep(50);
      return lines();
    },
  };
  server.child = await spawnServe(dir, server.logs, serveOpts);
  return server;
}

async function spawnServe(
  dir: string,
  logs: string[],
  opts: { env?: Record<string, string>; asNobody?: boolean; wrap?: string[] },
): Promise<ChildProcess> {
  const serve = [...(opts.wrap ?? []), POSTA, 'serve', '--dir', dir];
  const [command = POSTA, ...argv] = opts.asNobody
    ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', '--', ...serve]
    : serve;
  const child = spawn(command, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`posta serve exited with ${code}: ${stderr}`)));
    lines.on('line', (line) => {
      logs.push(line);
      void appendFile(join(dir, 'test-serve.log'), `${line}\n`).catch(() => {});
      if (line.includes('"msg":"ready"')) resolve();
    });
  });
  return child;
}
