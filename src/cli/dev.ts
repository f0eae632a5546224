import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { PostaError, UsageError } from '../errors.ts';
import { loginLink } from '../web/dashboard/admin.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { selfSignedCertificate } from '../tls/selfsigned.ts';
import { initDomain } from '../setup/init.ts';
import { addUser } from '../users/accounts.ts';
import { loadConfig } from '../config/load.ts';
import { createLogger, type Logger } from '../log/log.ts';
import { startApp } from '../app.ts';
import { str, type Command } from './command.ts';
import { announce, untilSignal } from './serve.ts';

const DOMAIN = 'example.test';
const HOSTNAME = `mail.${DOMAIN}`;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** The highest offset added to --port-base (HTTP on N+6025). */
const TOP_OFFSET = 6025;

function portBase(text: string | undefined): number {
  if (text === undefined) return 2000;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n + TOP_OFFSET <= 65535)) {
    throw new UsageError(
      `--port-base "${text}" is not a whole number from 1 to ${65535 - TOP_OFFSET}; the ports are N+25, N+465, N+587 and N+${TOP_OFFSET}.`,
    );
  }
  return n;
}

export const dev: Command = {
  name: 'dev',
  asRoot: true,
  help: `Usage: posta dev [--sandbox DIR] [--port-base N]

Creates a throwaway config for ${DOMAIN} in a new temporary folder (or DIR, which
must not exist yet) with a self-signed certificate and one account, and runs
posta on 127.0.0.1: inbound SMTP on N+25, submission (STARTTLS) on N+587,
submissions (TLS) on N+465 and HTTP (/metrics) on N+6025, with N = 2000 by
default (ports 2025, 2587, 2465, 8025). Accepted mail is DKIM-signed and
queued, and the delivery workers write it to the capture folder as .eml files
instead of sending it: nothing leaves the machine, and no DNS query is made.
The folder stays after Ctrl-C, with the captured mail; delete it when done.`,
  options: { sandbox: { type: 'string' }, 'port-base': { type: 'string' } },
  async run(args) {
    const base = portBase(str(args, 'port-base'));
    const root = str(args, 'sandbox') ?? (await mkdtemp(join(tmpdir(), 'posta-dev-')));
    const dir = join(root, 'posta');
    const user = `dev@${DOMAIN}`;
    const log = createLogger();
    let started: Awaited<ReturnType<typeof startSandbox>>;
    try {
      started = await startSandbox(dir, base, user, log);
    } catch (err) {
      // A temporary folder of ours goes; a --sandbox DIR is the user's to look at.
      if (!str(args, 'sandbox')) await rm(root, { recursive: true, force: true });
      throw err;
    }
    const { app, password, captured, dashboard } = started;
    const sub = base + 587;
    process.stderr.write(`
posta dev: a sandbox on loopback. Mail is accepted, DKIM-signed and captured; nothing is sent.

  config folder   ${dir}
  submission      127.0.0.1:${sub} (STARTTLS)   submissions 127.0.0.1:${base + 465} (TLS)
  inbound SMTP    127.0.0.1:${base + 25}
  dashboard       ${dashboard}
                  (logs you in once; later \`posta admin link --dir ${dir}\` makes another)
  metrics         http://127.0.0.1:${base + TOP_OFFSET}/metrics
  account         ${user}   password ${password}
  captured mail   ${captured}/*.eml

Send a test message:
  swaks --server 127.0.0.1:${sub} --tls --auth-user ${user} --auth-password ${password} \\
        --from ${user} --to someone@example.org

Stop with Ctrl-C.

`);
    announce(app, log);
    await untilSignal(app, log);
    process.stderr.write(
      `\nThe sandbox stays in ${root} with the captured mail; delete it when done.\n`,
    );
  },
};

/** Make the sandbox's config folder in DIR and start posta on it. */
async function startSandbox(dir: string, base: number, user: string, log: Logger) {
  const pems = await selfSignedCertificate([HOSTNAME, 'localhost', '127.0.0.1']);
  await initDomain({
    dir,
    domain: DOMAIN,
    hostname: HOSTNAME,
    values: {
      listen: {
        smtp: [`127.0.0.1:${base + 25}`],
        submission: [`127.0.0.1:${base + 587}`],
        submissions: [`127.0.0.1:${base + 465}`],
        http: [`127.0.0.1:${base + TOP_OFFSET}`],
        https: [],
      },
      tls: { cert: 'sandbox-cert.pem', key: 'sandbox-key.pem' },
    },
  });
  await writeFile(join(dir, 'sandbox-cert.pem'), pems.cert);
  await writeFile(join(dir, 'sandbox-key.pem'), pems.key, { mode: 0o600 });
  // Letters and digits only: a password that begins with '-' is taken for
  // an option by swaks and by `posta send --password`.
  const password = Array.from({ length: 16 }, () => ALNUM[randomInt(ALNUM.length)]).join('');
  await addUser(dir, user, password, { sendAsDomain: true });
  const config = await loadConfig(dir);
  const captured = join(config.dataDir, 'captured');
  const app = await startApp(config, { log, captureDir: captured }).catch((err: Error) => {
    if (!/^Cannot listen/.test(err.message)) throw err;
    throw new PostaError(
      `${err.message.replace(/\.$/, '')}; pick other ports with --port-base N (now ${base}: ports N+25, N+465, N+587, N+${TOP_OFFSET}).`,
    );
  });
  return { app, password, captured, dashboard: loginLink(config) };
}
