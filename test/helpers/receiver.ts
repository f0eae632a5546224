/**
 * A receiving MX for delivery tests (test/peers/mx_receiver.py, on aiosmtpd):
 * an SMTP server independent of posta that writes each message it accepts to
 * a folder. The recipient's local part picks its behaviour: reject*,
 * tempfailN*, always-tempfail*, datareject*, anything else is accepted (see
 * the docstring of mx_receiver.py).
 */
import { spawn } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, tempDir } from './posta.ts';
import { makeCert } from './certs.ts';
import { randomLoopback } from './net.ts';
import { SOA, startDns, type DnsServer } from './dns.ts';

export interface ReceivedMessage {
  n: number;
  /** "" for the null sender <>. */
  mailFrom: string;
  /** The parameters of MAIL FROM, as "SMTPUTF8" or "BODY=8BITMIME". */
  mailOptions: string[];
  /** The recipients accepted in this transaction. */
  rcptTos: string[];
  tls: boolean;
  tlsVersion: string | null;
  peer: string;
  helo: string;
  /** Id of the TCP connection; the same for messages sent over one. */
  connection: number;
  /** The "ADDR:PORT" it arrived on, as given to startReceiver. */
  listen: string;
  /** The message as transmitted (CRLF line ends, dot-unstuffed). */
  data: Buffer;
  /** Path of the .eml file holding `data`. */
  file: string;
}

export interface ReceivedConnection {
  connection: number;
  peer: string;
  listen: string;
  /** When it was accepted (ms since the epoch). */
  time: number;
}

export interface Receiver {
  /** Where N.eml and N.json are written. */
  dir: string;
  listen: string[];
  /** All messages received so far, ordered by n. */
  messages(): Promise<ReceivedMessage[]>;
  /** All TCP connections accepted so far, in order. */
  connections(): Promise<ReceivedConnection[]>;
  /** When each connection that ended ended (ms since the epoch), by its id. */
  closed(): Promise<Map<number, number>>;
  /** Resolves once at least `count` messages arrived (default timeout 30 s). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  /** The first message that `match`es, waiting for it (default 20 s); `what` names it in the error. */
  arrival(
    match: (m: ReceivedMessage) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<ReceivedMessage>;
  stop(): Promise<void>;
}

interface Meta {
  mail_from: string;
  mail_options: string[];
  rcpt_tos: string[];
  tls: boolean;
  tls_version: string | null;
  peer: string;
  helo: string;
  connection: number;
  listen: string;
}

/**
 * Start a receiver listening on each "ADDR:PORT" (IPv6 as "[::1]:25").
 * It offers STARTTLS with a fresh self-signed certificate unless `tls` gives
 * one, or is false for no STARTTLS.
 */
export async function startReceiver(opts: {
  listen: string[];
  tls?: { cert: string; key: string } | false;
  hostname?: string;
  /** Offer STARTTLS, but fail every TLS handshake. */
  brokenTls?: boolean;
  /** Do not offer SMTPUTF8 (RFC 6531). */
  noSmtpUtf8?: boolean;
  /** Wait this long (ms) before the reply to the end of DATA: a slow receiver. */
  dataDelayMs?: number;
}): Promise<Receiver> {
  const base = await tempDir('posta-mx-');
  const dir = join(base, 'mail');
  const hostname = opts.hostname ?? 'mx.receiver.test';
  const tls = opts.tls ?? (await makeCert(base, hostname));
  const args = [join(ROOT, 'test/peers/mx_receiver.py'), '--out', dir, '--hostname', hostname];
  for (const l of opts.listen) args.push('--listen', l);
  if (tls) args.push('--cert', tls.cert, '--key', tls.key);
  if (opts.brokenTls) args.push('--broken-tls');
  if (opts.noSmtpUtf8) args.push('--no-smtputf8');
  if (opts.dataDelayMs) args.push('--data-delay', String(opts.dataDelayMs / 1000));
  // stdin stays open as a pipe: the receiver exits when it closes, so it
  // dies with the test process even if stop() is never called.
  args.push('--watch-stdin');
  const child = spawn('/usr/bin/python3', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    void exited.then(() =>
      reject(new Error(`mx_receiver.py exited with ${child.exitCode}: ${stderr}`)),
    );
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'READY') resolve();
    });
  });

  /** The whole lines of DIR/`name` as JSON (the last one may be half written). */
  const jsonLines = async <T>(name: string): Promise<T[]> => {
    let text: string;
    try {
      text = await readFile(join(dir, name), 'utf8');
    } catch {
      return [];
    }
    return text
      .split('\n')
      .slice(0, -1)
      .map((line) => JSON.parse(line) as T);
  };

  const messages = async (): Promise<ReceivedMessage[]> => {
    const ns = (await readdir(dir))
      .map((f) => /^(\d+)\.json$/.exec(f)?.[1])
      .filter((n) => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    return Promise.all(
      ns.map(async (n) => {
        const meta = JSON.parse(await readFile(join(dir, `${n}.json`), 'utf8')) as Meta;
        const file = join(dir, `${n}.eml`);
        return {
          n,
          mailFrom: meta.mail_from,
          mailOptions: meta.mail_options,
          rcptTos: meta.rcpt_tos,
          tls: meta.tls,
          tlsVersion: meta.tls_version,
          peer: meta.peer,
          helo: meta.helo,
          connection: meta.connection,
          listen: meta.listen,
          data: await readFile(file),
          file,
        };
      }),
    );
  };

  return {
    dir,
    listen: opts.listen,
    messages,
    async connections() {
      return (await jsonLines<ReceivedConnection>('connections.jsonl')).map(
        ({ connection, peer, listen, time }) => ({ connection, peer, listen, time: time * 1000 }),
      );
    },
    async closed() {
      const lines = await jsonLines<{ connection: number; time: number }>('closed.jsonl');
      return new Map(lines.map((l) => [l.connection, l.time * 1000]));
    },
    async arrival(match, what, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = (await messages()).find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no message ${what} arrived at the receiver`);
        await sleep(100);
      }
    },
    async waitFor(count, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const got = await messages();
        if (got.length >= count) return got;
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `mx receiver exited while waiting for ${count} messages (${got.length} arrived): ${stderr}`,
          );
        }
        if (Date.now() > deadline) {
          const list = got.map((m) => `${m.n}: to ${m.rcptTos.join(', ')}`).join('; ');
          throw new Error(
            `mx receiver: waited ${timeoutMs} ms for ${count} messages, ${got.length} arrived` +
              (list ? ` (${list})` : ''),
          );
        }
        await sleep(50);
      }
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A receiving MX for `domain` on a random 127.x.y.z:25, and a DNS server on
 * loopback whose MX for `domain` points at it: give `dns.endpoint` to
 * startServer and mail for the domain arrives at `rx`.
 */
export async function startMxFor(
  domain = 'dest.test',
  /** How the receiver behaves (startReceiver's options but `listen`). */
  receiver: Omit<Parameters<typeof startReceiver>[0], 'listen'> = {},
): Promise<{ rx: Receiver; dns: DnsServer; address: string; stop(): Promise<void> }> {
  const address = randomLoopback();
  const rx = await startReceiver({ ...receiver, listen: [`${address}:25`] });
  const dns = await startDns(
    [SOA('test'), `${domain}. IN MX 10 mx.${domain}.`, `mx.${domain}. IN A ${address}`, ''].join(
      '\n',
    ),
  );
  return {
    rx,
    dns,
    address,
    async stop() {
      await rx.stop();
      dns.stop();
    },
  };
}
