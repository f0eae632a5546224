/**
 * `posta send`: send a test message through a submission port as a mail
 * client would (submit/client.ts), show how the session went, and with
 * --wait follow the message through the queue of this machine's server to
 * the recipient's MX.
 */
import { existsSync } from 'node:fs';
import { hostname as machineName } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import MailComposer from 'nodemailer/lib/mail-composer';
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig, type ResolvedConfig } from '../config/load.ts';
import { formatEndpoint } from '../config/endpoint.ts';
import { newMessageId, rfc5322Date } from '../message/header.ts';
import { openQueueDbIfAny } from '../queue/spool.ts';
import { messageDetail, type LoggedAttempt, type MessageDetail } from '../queue/inspect.ts';
import { submit, SubmitFailure, type SubmitResult } from '../submit/client.ts';
import { SELF_SIGNED } from '../tls/error-text.ts';
import { readPassword } from './password.ts';
import { str, type Command } from './command.ts';

const WAIT_SECONDS = 120;
const POLL_MS = 250;

export const send: Command = {
  name: 'send',
  help: `Usage: posta send --to ADDR [--from ADDR] [--server HOST:PORT] [--user U] [--password P]
                  [--tls] [--insecure] [--subject S] [--wait [--timeout SECONDS]]
                  [--dir DIR]

Send a test message over SMTP submission, as a mail client does: TLS (port
465 or --tls: implicit TLS; otherwise STARTTLS, which is then required),
AUTH, one message. Prints the server, TLS version, the AUTH result and the
server's final reply, then "queued as ID".

  --to ADDR          the recipient (default: the environment variable $to)
  --from ADDR        the sender, in the envelope and in From (default: the user)
  --server HOST:PORT the submission server (default: the first [listen]
                     submission address of the config, on loopback for 0.0.0.0
                     and [::]; with --tls the first submissions address)
  --user U           the account (default: the environment variable $user)
  --password P       its password (default: the environment variable $pass,
                     else asked on the terminal or read from the first line
                     of standard input)
  --tls              implicit TLS (as on port 465) instead of STARTTLS
  --insecure         do not verify the server's certificate; by default it
                     must verify (NODE_EXTRA_CA_CERTS=FILE adds a CA to trust).
                     Until ACME gets posta its certificate, posta serves a
                     temporary self-signed one, which only --insecure accepts
  --subject S        the subject (default: "posta test message DATE")
  --wait             follow the message through the queue of the server that
                     uses --dir's config on this machine until every recipient
                     is delivered or has failed (see --timeout), and show
                     the MX, address, TLS version and reply of each delivery
  --timeout SECONDS  how long --wait follows the message (default 120); a
                     greylisting receiver may take 15 minutes or more

Exit status: 0 when the server took the message (with --wait: when it was
delivered), 1 when it refused it, or with --wait when delivery failed or
did not finish in time.`,
  options: {
    to: { type: 'string' },
    from: { type: 'string' },
    server: { type: 'string' },
    user: { type: 'string' },
    password: { type: 'string' },
    tls: { type: 'boolean' },
    insecure: { type: 'boolean' },
    subject: { type: 'string' },
    wait: { type: 'boolean' },
    timeout: { type: 'string' },
  },
  async run(args) {
    const to = str(args, 'to') ?? process.env.to;
    const user = str(args, 'user') ?? process.env.user;
    if (!to) throw new UsageError('--to is missing (or set $to); see `posta send --help`.');
    if (!user) throw new UsageError('--user is missing (or set $user); see `posta send --help`.');
    const from = str(args, 'from') ?? user;
    for (const [flag, a] of [
      ['--to', to],
      ['--from', from],
    ]) {
      if (!/^[^@\s<>]+@[^@\s<>]+$/.test(a ?? '')) {
        throw new UsageError(`${flag} "${a}" is not an address like i@example.com.`);
      }
    }
    const wait = args.values.wait === true;
    const timeout = waitSeconds(str(args, 'timeout'), wait);
    const implicitFlag = args.values.tls === true;
    const flagServer = str(args, 'server');
    const config =
      flagServer === undefined || wait
        ? await loadConfig(args.dir)
        : await loadConfig(args.dir).catch(() => null);
    const server = chooseServer(flagServer, implicitFlag, config);
    const queueDb = config && join(config.dataDir, 'queue.db');
    if (wait && (!queueDb || !existsSync(queueDb))) {
      throw new PostaError(
        `--wait follows the message in the queue of the server on this machine, and there is no ${queueDb}; run posta send where posta serve runs, with its --dir, or leave out --wait.`,
      );
    }
    const pass =
      str(args, 'password') ??
      process.env.pass ??
      (await readPassword(undefined, { confirm: false, prompt: `Password for ${user}: ` }));

    const now = new Date();
    const where = formatEndpoint(server);
    const mode = server.implicitTls ? 'implicit TLS' : 'STARTTLS';
    const data = await compose({
      from,
      to,
      subject: str(args, 'subject') ?? `posta test message ${rfc5322Date(now)}`,
      date: now,
      text:
        `This is a test message from posta.\n\n` +
        `It was sent by \`posta send\` on ${machineName()} to ${where} (${mode})\n` +
        `as ${user}, on ${rfc5322Date(now)}.\n`,
    });
    const verify = args.values.insecure !== true;

    let result: SubmitResult;
    try {
      result = await submit({
        host: server.host,
        port: server.port,
        implicitTls: server.implicitTls,
        servername: server.servername,
        verify,
        user,
        pass,
        from,
        to: [to],
        data,
      });
    } catch (err) {
      if (err instanceof SubmitFailure)
        throw failureSentence(err, { where, user, from, to, acme: config?.acme != null });
      throw err;
    }

    const out = process.stdout;
    out.write(`Server:  ${where} (${mode})\n`);
    out.write(
      `TLS:     ${result.tls}${result.cipher ? ` ${result.cipher}` : ''}, ${certText(result, server.servername, verify)}\n`,
    );
    out.write(`AUTH:    ${user} ok\n`);
    out.write(`Sent:    <${from}> to <${to}>\n`);
    out.write(`Reply:   ${oneLine(result.reply)}\n`);
    if (!result.queueId) {
      out.write('accepted (the reply names no queue id)\n');
      if (wait) {
        throw new PostaError(
          'The server took the message but named no queue id, so --wait cannot follow it; is --server a posta server?',
        );
      }
      return 0;
    }
    out.write(`queued as ${result.queueId}\n`);
    if (!wait || !config) return 0;
    return follow(config, result.queueId, timeout);
  },
};

interface Server {
  host: string;
  port: number;
  implicitTls: boolean;
  servername: string | undefined;
}

/** --server, else the config's first submission (--tls: submissions) endpoint, on loopback. */
function chooseServer(
  flag: string | undefined,
  implicitFlag: boolean,
  config: ResolvedConfig | null,
): Server {
  let host: string;
  let port: number;
  let implicitTls = implicitFlag;
  if (flag !== undefined) {
    const m =
      /^\[([0-9a-fA-F:.]+)\](?::(\d{1,5}))?$/.exec(flag) ??
      /^([A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(flag) ??
      (isIP(flag) === 6 ? [flag, flag] : null);
    if (!m || Number(m[2] ?? 0) > 65535) {
      throw new UsageError(
        `--server "${flag}" is not HOST:PORT, like mail.example.com:587 or [::1]:587.`,
      );
    }
    host = m[1] ?? '';
    port = m[2] !== undefined ? Number(m[2]) : implicitFlag ? 465 : 587;
  } else {
    const c = config as ResolvedConfig;
    const starttls = c.listen.submission[0];
    const tls = c.listen.submissions[0];
    const ep = implicitFlag ? (tls ?? starttls) : (starttls ?? tls);
    if (!ep) {
      throw new PostaError(
        `${c.file} has no [listen] submission or submissions address; give the server with --server HOST:PORT.`,
      );
    }
    implicitTls = ep === tls;
    host = ep.host === '0.0.0.0' ? '127.0.0.1' : ep.host === '::' ? '::1' : ep.host;
    port = ep.port;
  }
  if (port === 465) implicitTls = true;
  // Connecting to an address: the certificate is this server's, for its hostname.
  const servername = isIP(host) ? config?.hostname : host;
  return { host, port, implicitTls, servername };
}

async function compose(m: {
  from: string;
  to: string;
  subject: string;
  date: Date;
  text: string;
}): Promise<Buffer> {
  const domain = m.from.slice(m.from.lastIndexOf('@') + 1);
  return new MailComposer({ ...m, messageId: newMessageId(domain) }).compile().build();
}

function certText(r: SubmitResult, servername: string | undefined, verify: boolean): string {
  if (r.verified) return `certificate verified${servername ? ` for ${servername}` : ''}`;
  const note = [verify ? '' : '--insecure', r.authorizationError ?? ''].filter(Boolean).join(': ');
  return `certificate not verified${note ? ` (${note})` : ''}`;
}

const oneLine = (s: string) => s.replace(/\s*\r?\n\s*/g, ' ').trim();

function failureSentence(
  f: SubmitFailure,
  c: { where: string; user: string; from: string; to: string; acme: boolean },
): PostaError {
  const reply = f.reply ? oneLine(f.reply) : undefined;
  switch (f.step) {
    case 'connect':
      return new PostaError(
        reply
          ? `${c.where} refused the session: ${reply}.`
          : `Cannot talk to ${c.where}: ${oneLine(f.message)}; check --server and that posta serve is running.`,
      );
    case 'certificate':
      return new PostaError(
        `${c.where}'s certificate is not trusted (${oneLine(f.message)})${f.code === SELF_SIGNED && c.acme ? `: posta serves a temporary self-signed certificate until ACME gets one (\`posta cert status\` says how that goes)` : ''}; ${c.acme ? 'wait for the certificate, ' : ''}trust the server's CA with NODE_EXTRA_CA_CERTS=FILE, or add --insecure to send without verifying it.`,
      );
    case 'tls':
      return new PostaError(
        `TLS with ${c.where} failed: ${oneLine(f.message)}; check --server and --tls (implicit TLS on 465, STARTTLS on 587).`,
      );
    case 'no-auth':
      return new PostaError(
        `${c.where} does not offer AUTH after TLS; is it a submission port (587 or 465)?`,
      );
    case 'auth':
      return new PostaError(
        `${c.where} refused AUTH as ${c.user}: ${reply ?? oneLine(f.message)}; check --user and --password.`,
      );
    case 'sender':
      return new PostaError(
        `${c.where} refused the sender <${c.from}>: ${reply ?? oneLine(f.message)}.`,
      );
    case 'recipient':
      return new PostaError(
        `${c.where} refused the recipient <${c.to}>: ${reply ?? oneLine(f.message)}.`,
      );
    case 'data':
      return new PostaError(`${c.where} refused the message: ${reply ?? oneLine(f.message)}.`);
  }
}

/** --timeout: whole seconds, only with --wait. */
function waitSeconds(flag: string | undefined, wait: boolean): number {
  if (flag === undefined) return WAIT_SECONDS;
  if (!wait) throw new UsageError('--timeout goes with --wait; see `posta send --help`.');
  if (!/^\d+$/.test(flag)) {
    throw new UsageError(`--timeout "${flag}" is not a whole number of seconds, like 900.`);
  }
  if (Number(flag) < 1) throw new UsageError('--timeout must be at least 1 second.');
  return Number(flag);
}

/** "2 minutes", "90 s". */
function duration(seconds: number): string {
  if (seconds % 60 !== 0) return `${seconds} s`;
  return seconds === 60 ? '1 minute' : `${seconds / 60} minutes`;
}

/** --wait: poll the queue database until the message has left the queue, or `seconds`. */
async function follow(config: ResolvedConfig, id: string, seconds: number): Promise<number> {
  const db = openQueueDbIfAny(config.dataDir);
  let detail: MessageDetail;
  try {
    process.stdout.write(`Waiting for delivery (at most ${duration(seconds)})...\n`);
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const found = messageDetail(db, id);
      if (!found) {
        throw new PostaError(
          `Message ${id} is not in the queue in ${config.dataDir}; --wait needs the --dir of the server that took the message.`,
        );
      }
      detail = found;
      if (!detail.queued || Date.now() > deadline) break;
      await sleep(POLL_MS);
    }
  } finally {
    db.close();
  }
  return report(detail, id, seconds);
}

const OUTCOME: Record<string, string> = {
  delivered: 'delivered',
  permanent: 'bounced',
  expired: 'expired',
  transient: 'deferred',
};

function report(d: MessageDetail, id: string, seconds: number): number {
  const last = new Map<string, LoggedAttempt>();
  for (const a of d.attempts) last.set(a.recipient, a);
  const problems: string[] = [];
  for (const [rcpt, a] of last) {
    const still = d.queued?.recipients.some((r) => r.address === rcpt) ?? false;
    const outcome = still ? 'deferred' : (OUTCOME[a.outcome] ?? a.outcome);
    const via = a.mx ? ` via ${a.mx}${a.ip ? ` [${a.ip}]` : ''}` : '';
    const tls = a.tls
      ? `, ${a.tls} (certificate ${a.tlsVerified ? 'verified' : 'not verified'})`
      : a.ip
        ? ', no TLS'
        : '';
    process.stdout.write(`<${rcpt}> ${outcome}${via}${tls}\n    ${oneLine(a.reply)}\n`);
    if (outcome !== 'delivered') problems.push(`<${rcpt}> ${outcome}: ${oneLine(a.reply)}`);
  }
  for (const r of d.queued?.recipients ?? []) {
    if (last.has(r.address)) continue;
    process.stdout.write(`<${r.address}> queued, no attempt yet\n`);
    problems.push(`<${r.address}> has had no delivery attempt`);
  }
  if (problems.length === 0) return 0;
  const late = d.queued ? ` within ${duration(seconds)}` : '';
  throw new PostaError(
    `Not delivered${late}: ${problems.join('; ')}; \`posta queue show ${id}\` has the details.`,
  );
}
