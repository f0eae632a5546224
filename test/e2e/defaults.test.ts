/**
 * The config `posta init` writes, as it is (only a certificate added), run
 * where its wildcard listeners can really be had: a network namespace of the
 * test's own (unshare --net, loopback up, nothing else), with Linux's stock
 * net.ipv6.bindv6only = 0. It listens on 25, 587, 465 and 443 on IPv4 and
 * IPv6 and answers on 127.0.0.1 and ::1; SIGTERM stops it within 5 s, also
 * with [acme] and a CA that refuses the connection or never answers; a port
 * that is taken makes it exit 1 by itself with one sentence.
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { POSTA, initFolder, posta } from '../helpers/posta.ts';
import { makeCert } from '../helpers/certs.ts';

/** A process holding a fresh network namespace; run others in it with `inNs`. */
let holder: ChildProcess;

before(async () => {
  holder = spawn(
    'unshare',
    ['--net', '--', 'sh', '-c', 'ip link set lo up && echo up && exec sleep infinity'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    holder.once('exit', (code) => reject(new Error(`unshare --net exited with ${code}`)));
    holder.stdout?.once('data', () => resolve());
  });
});

/** Every process started in the namespace, killed at the end whatever happened. */
const started: ChildProcess[] = [];

afterEach(async () => {
  for (const c of started.splice(0)) {
    if (c.exitCode !== null || c.signalCode !== null) continue;
    const gone = new Promise((resolve) => c.once('exit', resolve));
    c.kill('SIGKILL');
    await gone;
  }
});

after(() => {
  holder?.kill();
});

function inNs(command: string, args: string[]): ChildProcess {
  const child = spawn('nsenter', [`--net=/proc/${holder.pid}/ns/net`, '--', command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  return child;
}

function output(child: ChildProcess): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })),
  );
}

/**
 * Python peers in the namespace: `probe` prints one line per HOST PORT:
 * the SMTP banner (25, 587), the banner over implicit TLS (465), the status
 * line of an HTTPS request (443). `hold` listens and never answers.
 */
const PEERS = String.raw`
import socket, ssl, sys
def probe(host, port):
    s = socket.create_connection((host, port), timeout=10)
    if port in (465, 443):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s, server_hostname='mail.example.test')
    if port == 443:
        s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    line = s.makefile('rb').readline().decode().strip()
    s.close()
    return line
if sys.argv[1] == 'probe':
    for target in sys.argv[2:]:
        host, port = target.rsplit(':', 1)
        print(target, probe(host.strip('[]'), int(port)), flush=True)
else:
    family = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET
    s = socket.socket(family)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((sys.argv[2], int(sys.argv[3])))
    s.listen(16)
    print('listening', flush=True)
    conns = []
    while True:
        conns.append(s.accept()[0])
`;

/** A peer that listens on HOST PORT (in the namespace) until killed. */
async function hold(host: string, port: number): Promise<ChildProcess> {
  const child = inNs('/usr/bin/python3', ['-c', PEERS, 'hold', host, String(port)]);
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the holding peer exited with ${code}`)));
    child.stdout?.once('data', () => resolve());
  });
  return child;
}

/** The folder of `posta init`, with `section` appended (a certificate). */
async function defaultFolder(section: (dir: string) => string | Promise<string>): Promise<string> {
  const { dir } = await initFolder('example.test');
  await appendFile(join(dir, 'posta.toml'), `\n${await section(dir)}\n`);
  return dir;
}

async function tlsFiles(dir: string): Promise<string> {
  const { cert, key } = await makeCert(dir, 'mail.example.test');
  return `[tls]\ncert = "${cert}"\nkey = "${key}"`;
}

interface Serve {
  child: ChildProcess;
  logs: string[];
  stderr: () => string;
  exited: Promise<number>;
}

function serve(dir: string): Serve {
  const child = inNs(POSTA, ['serve', '--dir', dir]);
  const logs: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (l) => logs.push(l));
  const exited = new Promise<number>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : 0))),
  );
  return { child, logs, stderr: () => stderr, exited };
}

async function ready(s: Serve): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (s.logs.some((l) => l.includes('"msg":"ready"'))) return;
    if (s.child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`posta serve is not ready: ${s.stderr()}\n${s.logs.join('\n')}`);
}

/** SIGTERM; resolves with the exit code, failing when it takes over 5 s. */
async function stopsWithin5s(s: Serve): Promise<number> {
  s.child.kill('SIGTERM');
  const code = await Promise.race([s.exited, sleep(5000).then(() => 'late' as const)]);
  if (code === 'late') {
    s.child.kill('SIGKILL');
    assert.fail(`posta serve still ran 5 s after SIGTERM:\n${s.logs.slice(-5).join('\n')}`);
  }
  return code;
}

test('the namespace has the stock net.ipv6.bindv6only = 0', async () => {
  const r = await output(inNs('cat', ['/proc/sys/net/ipv6/bindv6only']));
  assert.equal(r.stdout.trim(), '0');
});

test('the default config listens on IPv4 and IPv6, answers on both and stops within 5 s', async () => {
  const dir = await defaultFolder(tlsFiles);
  const s = serve(dir);
  await ready(s);
  const listening = s.logs
    .filter((l) => l.includes('"msg":"listening"'))
    .map((l) => (JSON.parse(l) as { address: string }).address);
  for (const port of [25, 587, 465, 443]) {
    assert.ok(listening.includes(`0.0.0.0:${port}`), `0.0.0.0:${port} in ${listening.join(' ')}`);
    assert.ok(listening.includes(`[::]:${port}`), `[::]:${port} in ${listening.join(' ')}`);
  }
  const targets = [25, 587, 465, 443].flatMap((p) => [`127.0.0.1:${p}`, `[::1]:${p}`]);
  const r = await output(inNs('/usr/bin/python3', ['-c', PEERS, 'probe', ...targets]));
  assert.equal(r.code, 0, r.stderr);
  const lines = new Map(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => [l.split(' ')[0], l]),
  );
  for (const t of targets) {
    const line = lines.get(t) ?? '';
    if (t.endsWith(':443')) assert.match(line, /HTTP\/1\.1 404/, t);
    else assert.match(line, / 220 mail\.example\.test /, t);
  }
  assert.equal(await stopsWithin5s(s), 0);
});

test('a port that is taken: exit 1 at once, one sentence, every listener closed', async () => {
  const dir = await defaultFolder(tlsFiles);
  // Taken after 25, 587 and 0.0.0.0:465 are open: those must be let go too.
  const other = await hold('::', 465);
  try {
    const s = serve(dir);
    const code = await Promise.race([s.exited, sleep(10_000).then(() => 'running' as const)]);
    if (code === 'running') s.child.kill('SIGKILL');
    assert.equal(code, 1, `posta serve must exit 1 by itself: ${s.stderr()}`);
    assert.equal(
      s.stderr(),
      'posta: Cannot listen for submissions on [::]:465: the address is in use by another program.\n',
    );
  } finally {
    other.kill();
  }
});

for (const ca of ['refuses the connection', 'accepts and never answers'] as const) {
  test(`[acme] with a CA that ${ca}: serving, the error says why, SIGTERM stops it within 5 s`, async () => {
    const port = ca === 'refuses the connection' ? 1 : 14000;
    const blackhole = port === 1 ? null : await hold('127.0.0.1', port);
    const url = `https://127.0.0.1:${port}/directory`;
    try {
      const dir = await defaultFolder(() =>
        [
          '[acme]',
          'email = "postmaster@example.test"',
          `directory = "${url}"`,
          'challenge = "http-01"',
        ].join('\n'),
      );
      const s = serve(dir);
      await ready(s);
      assert.ok(s.logs.some((l) => l.includes('"address":"[::]:80"')));
      const status = await posta(['status', '--dir', dir]);
      for (let i = 0; port === 1 && i < 100 && !s.logs.some((l) => l.includes('failed')); i++) {
        await sleep(100);
      }
      // The CA that never answers has a request in flight now.
      assert.equal(await stopsWithin5s(s), 0);
      assert.equal(status.code, 0, status.stderr);
      assert.match(
        status.stdout,
        /^certificate {2}mail\.example\.test, mta-sts\.example\.test; temporary, self-signed/m,
      );
      if (port === 1) {
        const failed = s.logs.find((l) => l.includes('certificate order failed')) ?? '{}';
        assert.equal(
          (JSON.parse(failed) as { err?: string }).err,
          `The ACME CA at ${url} cannot be reached: the connection was refused (ECONNREFUSED).`,
        );
        const cert = await posta(['cert', 'status', '--dir', dir]);
        assert.equal(cert.code, 1);
        assert.match(cert.stdout, /^last error {3}The ACME CA at .* refused \(ECONNREFUSED\)\./m);
      }
    } finally {
      blackhole?.kill();
    }
  });
}
