/**
 * A hostile receiving MX: a small SMTP server in this file, on its own
 * 127.x.y.z:25 per case (DNS from test/helpers/dns.ts names it as the MX),
 * that trickles an endless reply, never greets, injects a reply before the
 * TLS handshake, drops the connection after the final dot, or says 421 after
 * MAIL FROM; and DNS that loops through CNAMEs or names posta itself as MX.
 * Each delivery must end in an outcome that says what happened, and the
 * memory of the real `posta serve` stays bounded (read from /proc).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta, tempDir } from '../helpers/posta.ts';
import { makeCert } from '../helpers/certs.ts';
import { startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { plain, RawSmtp, submit } from '../helpers/smtp.ts';

/** What a hostile MX does with one command line; true when it handled it. */
type Hook = (line: string, c: Conn) => boolean;

interface Conn {
  socket: Socket;
  write(text: string): void;
  /** Replace the socket (after STARTTLS). */
  upgrade(s: TLSSocket): void;
  tls: boolean;
  /** Number of this connection to the MX, from 1. */
  n: number;
}

interface Mx {
  address: string;
  /** Messages received in full (after DATA), and whether over TLS. */
  messages: { tls: boolean; data: string }[];
  commands: string[];
  connections: number;
  server: Server;
  sockets: Set<Socket>;
}

let cert: { cert: string; key: string };

/**
 * A line-based SMTP server: well-behaved, except where `hook` takes over a
 * command, or `greet` is false (a tarpit that never greets).
 */
async function hostileMx(hook: Hook = () => false, greet = true): Promise<Mx> {
  const mx: Mx = {
    address: randomLoopback(),
    messages: [],
    commands: [],
    connections: 0,
    server: null as unknown as Server,
    sockets: new Set(),
  };
  mx.server = createServer((raw) => {
    mx.sockets.add(raw);
    raw.on('error', () => {});
    let buf = '';
    let inData = false;
    let data = '';
    const c: Conn = {
      socket: raw,
      tls: false,
      n: ++mx.connections,
      write: (t) => {
        if (!c.socket.destroyed) c.socket.write(t);
      },
      upgrade(s) {
        c.socket = s;
        c.tls = true;
        buf = '';
        s.on('error', () => {});
        s.on('data', onData);
      },
    };
    const onLine = (line: string) => {
      if (inData) {
        if (line === '.') {
          inData = false;
          mx.messages.push({ tls: c.tls, data });
          data = '';
          if (!hook('.', c)) c.write('250 2.0.0 queued\r\n');
        } else data += `${line}\r\n`;
        return;
      }
      mx.commands.push(line);
      if (hook(line, c)) return;
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO')
        c.write(
          `250-mx.hostile.test\r\n${c.tls ? '' : '250-STARTTLS\r\n'}250-PIPELINING\r\n250 8BITMIME\r\n`,
        );
      else if (verb === 'DATA') {
        inData = true;
        c.write('354 go on\r\n');
      } else if (verb === 'QUIT') {
        c.write('221 bye\r\n');
        c.socket.end();
      } else if (verb === 'STAR') {
        c.write('220 go ahead\r\n');
        raw.removeAllListeners('data');
        c.upgrade(new TLSSocket(raw, { isServer: true, ...keyPair() }));
      } else c.write('250 2.0.0 ok\r\n');
    };
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      let i;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        onLine(line);
      }
    };
    raw.on('data', onData);
    if (greet) c.write('220 mx.hostile.test ESMTP\r\n');
  });
  await new Promise<void>((resolve) => mx.server.listen(25, mx.address, resolve));
  return mx;
}

function keyPair(): { cert: Buffer; key: Buffer } {
  return { cert: readFileSync(cert.cert), key: readFileSync(cert.key) };
}

function stopMx(mx: Mx | undefined): void {
  if (!mx) return;
  for (const s of mx.sockets) s.destroy();
  mx.server.close();
}

/** Writes `250-` lines forever, one byte every 20 ms, until the peer goes. */
function trickle(c: Conn): void {
  const text = '250-still going\r\n';
  let i = 0;
  const timer = setInterval(() => {
    if (c.socket.destroyed) return clearInterval(timer);
    c.write(text[i++ % text.length] ?? '');
  }, 20);
  c.socket.once('close', () => clearInterval(timer));
}

const HOST = randomLoopback();
let dns: DnsServer;
let s: TestServer;
const mxs: Record<string, Mx> = {};

before(async () => {
  cert = await makeCert(await tempDir('posta-hostile-'), 'mx.hostile.test');
  const trickling = new WeakSet<Conn>();
  mxs.endless = await hostileMx((line, c) => {
    if (trickling.has(c)) return true; // DATA, pipelined: no answer before the endless one ends
    if (!/^RCPT TO:/i.test(line)) return false;
    trickling.add(c);
    trickle(c);
    return true;
  });
  mxs.tarpit = await hostileMx(() => false, false);
  mxs.inject = await hostileMx((line, c) => {
    if (!/^STARTTLS/i.test(line)) return false;
    // RFC 3207 §6: the injected line arrives before the handshake, in one write.
    c.write('220 go ahead\r\n250 injected\r\n');
    c.socket.removeAllListeners('data');
    c.upgrade(new TLSSocket(c.socket, { isServer: true, ...keyPair() }));
    return true;
  });
  mxs.drop = await hostileMx((line, c) => {
    if (line !== '.' || c.n > 1) return false;
    c.socket.destroy(); // the message is in, the 250 never comes
    return true;
  });
  mxs.closing = await hostileMx((line, c) => {
    if (!/^MAIL FROM:/i.test(line)) return false;
    c.write('421 4.7.0 try later\r\n');
    c.socket.end();
    return true;
  });
  const zone = [SOA('test')];
  for (const [name, mx] of Object.entries(mxs)) {
    zone.push(`${name}.test. IN MX 10 mx.${name}.test.`, `mx.${name}.test. IN A ${mx.address}`);
  }
  zone.push(
    'loop.test. IN CNAME loop2.test.',
    'loop2.test. IN CNAME loop.test.',
    // posta itself is the MX: by name, and by address under another name.
    'self.test. IN MX 10 mail.example.test.',
    `mail.example.test. IN A ${HOST}`,
    'selfip.test. IN MX 10 other.selfip.test.',
    `other.selfip.test. IN A ${HOST}`,
    '',
  );
  dns = await startDns(zone.join('\n'));
  s = await startServer({
    dns: dns.endpoint,
    host: HOST,
    extraToml: [
      '[delivery]',
      'first_retry = 1',
      'max_retry = 2',
      'connect_timeout = 3',
      'reply_timeout = 2',
      'attempt_timeout = 20',
    ].join('\n'),
  });
});

after(async () => {
  await s?.stop('SIGKILL');
  for (const mx of Object.values(mxs)) stopMx(mx);
  dns?.stop();
});

interface Shown {
  queued: unknown;
  attempts: { recipient: string; outcome: string; reply: string; tls: string | null }[];
}

async function show(id: string): Promise<Shown> {
  const r = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Shown;
}

/** The queue record once an attempt matches, within `ms`. */
async function attempt(
  id: string,
  match: (a: Shown['attempts'][number]) => boolean,
  ms = 30_000,
): Promise<Shown> {
  let shown = await show(id);
  for (let i = 0; i < ms / 250 && !shown.attempts.some(match); i++) {
    await sleep(250);
    shown = await show(id);
  }
  return shown;
}

function rssKb(): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${s.child.pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** posta's resident memory stays under a bound while `run` goes on. */
async function bounded(run: () => Promise<void>): Promise<void> {
  const before = rssKb().rss;
  await run();
  const grown = rssKb().rss - before;
  assert.ok(grown < 64 * 1024, `posta's RSS grew by ${grown} kB`);
  assert.ok(rssKb().hwm < 512 * 1024, `posta's peak RSS is ${rssKb().hwm} kB`);
}

test('an endless reply trickled a byte at a time ends the attempt at its deadline, transient', async () => {
  await bounded(async () => {
    const id = await submit(s, 'bob@endless.test', 'endless');
    const shown = await attempt(id, (a) => a.outcome === 'transient');
    const a = shown.attempts.find((x) => x.outcome === 'transient');
    assert.ok(a, JSON.stringify(shown));
    assert.match(
      a.reply,
      /^451 4\.4\.2 mx\.endless\.test did not finish its reply to RCPT TO within 2 seconds$/,
    );
    assert.ok(shown.queued, 'still queued for a retry');
  });
});

test('a tarpit that never greets ends the attempt, transient', async () => {
  await bounded(async () => {
    const id = await submit(s, 'bob@tarpit.test', 'tarpit');
    const shown = await attempt(id, (a) => a.outcome === 'transient');
    assert.match(
      shown.attempts[0]?.reply ?? '',
      /^451 4\.4\.2 .*mx\.tarpit\.test.*Greeting never received/,
    );
  });
});

test('a reply injected before the TLS handshake is not taken as an answer inside TLS', async () => {
  await bounded(async () => {
    const id = await submit(s, 'bob@inject.test', 'inject');
    const done = await attempt(id, (a) => a.outcome === 'delivered');
    const a = done.attempts.find((x) => x.outcome === 'delivered');
    assert.ok(a, JSON.stringify(done));
    // Delivered only from a transaction the MX really took, over TLS.
    assert.equal(mxs.inject?.messages.length, 1);
    assert.equal(mxs.inject?.messages[0]?.tls, true);
    assert.match(a.tls ?? '', /^TLSv1/);
    assert.match(a.reply, /^250 2\.0\.0 queued/);
    // After the handshake posta said EHLO again, as RFC 3207 §4.2 asks.
    const afterTls = mxs.inject?.commands.slice(mxs.inject.commands.indexOf('STARTTLS') + 1);
    assert.match(afterTls?.[0] ?? '', /^EHLO /);
  });
});

test('a connection dropped after the final dot is deferred and the message sent again', async () => {
  await bounded(async () => {
    const id = await submit(s, 'bob@drop.test', 'drop');
    const shown = await attempt(id, (a) => a.outcome === 'delivered');
    const first = shown.attempts[0];
    assert.equal(first?.outcome, 'transient', JSON.stringify(shown));
    assert.match(first?.reply ?? '', /^451 4\.4\.2 /);
    assert.ok(shown.attempts.some((a) => a.outcome === 'delivered'));
    assert.equal(mxs.drop?.messages.length, 2, 'at least once: the MX got it twice');
    assert.ok(
      s.logs.some((l) => l.includes('"rcpt":"bob@drop.test"') && l.includes('"msg":"deferred"')),
    );
  });
});

test("a 421 after MAIL FROM is recorded and logged with the remote's own text", async () => {
  const from = s.logs.length;
  const id = await submit(s, 'bob@closing.test', 'closing');
  const shown = await attempt(id, (a) => a.outcome === 'transient');
  assert.equal(shown.attempts[0]?.reply, '421 4.7.0 try later', JSON.stringify(shown));
  const lines = await s.logged(from, '421 4.7.0 try later');
  assert.ok(lines.length > 0, s.logs.slice(from).join('\n'));
});

test('a CNAME loop defers instead of bouncing', async () => {
  const id = await submit(s, 'bob@loop.test', 'loop');
  const shown = await attempt(id, () => true);
  assert.equal(shown.attempts[0]?.outcome, 'transient', JSON.stringify(shown));
  assert.match(shown.attempts[0]?.reply ?? '', /^451 4\.4\.3 .*loop/);
  assert.ok(shown.queued, 'still queued');
});

for (const domain of ['self.test', 'selfip.test']) {
  test(`an MX that is posta itself (${domain}) bounces with the loop text, not "relaying denied"`, async () => {
    const id = await submit(s, `bob@${domain}`, 'self');
    const shown = await attempt(id, () => true);
    assert.equal(shown.attempts[0]?.outcome, 'permanent', JSON.stringify(shown));
    assert.equal(
      shown.attempts[0]?.reply,
      `550 5.4.6 mail for ${domain} loops back to myself (MX points to this server)`,
    );
  });
}

// An A-label that is not valid IDNA (RFC 5891 §5.4): smtp-server decodes
// xn--a to U+0080 and xn--a-ecp to "a⒈"; the reply must quote what was received.
for (const port of ['smtp', 'submissions'] as const) {
  test(`an invalid A-label in RCPT TO on ${port} is refused as received, not decoded`, async () => {
    const c = await RawSmtp.connect(s.host, s.ports[port], { tls: port === 'submissions' });
    try {
      await c.reply();
      await c.cmd('EHLO client.test');
      if (port === 'submissions') {
        assert.equal((await c.cmd(`AUTH PLAIN ${plain(s.user, s.password)}`)).code, 235);
      }
      assert.equal((await c.cmd(`MAIL FROM:<${s.user}>`)).code, 250);
      for (const to of ['bob@xn--a.test', 'bob@xn--abc.test', 'bob@xn--a-ecp.test']) {
        const r = await c.cmd(`RCPT TO:<${to}>`);
        assert.equal(r.code, 550, r.raw);
        assert.ok(r.raw.includes(`<${to}>`), r.raw);
        assert.ok(/^[\x20-\x7e\r\n]*$/.test(r.raw), `ASCII only: ${JSON.stringify(r.raw)}`);
      }
    } finally {
      c.close();
    }
  });
}

test('SIGTERM while an MX trickles its reply stops posta within its 4 s', async () => {
  const seen = mxs.endless?.commands.length ?? 0;
  await submit(s, 'carol@endless.test', 'endless at stop');
  for (let i = 0; i < 200; i++) {
    if (mxs.endless?.commands.slice(seen).some((c) => c.includes('carol@endless.test'))) break;
    await sleep(50);
  }
  const started = Date.now();
  await s.stop('SIGTERM');
  const took = Date.now() - started;
  assert.ok(took < 5000, `stopped after ${took} ms`);
});
