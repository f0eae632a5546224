/**
 * `posta sendmail`: the sendmail(8) interface for programs on this machine.
 * It hands the message to the running `posta serve` over the local
 * submission socket (submit/socket.ts), which any user may use, and exits
 * once it is queued. With no server running it writes the queue itself
 * (data/queue.db, which only the server's user can), and the server delivers
 * the message when it starts. Either way the message is prepared as
 * submission prepares it (submit/drop.ts): Date, Message-ID, Received, the
 * bulk fields (one-click unsubscribe, Feedback-ID), DKIM.
 *
 * The flags that programs pass to sendmail are accepted: -t, -f, -F, -i, -r
 * (an old -f), -v, -N, -B, -o with any option (-oi is -i; -odi, -oem and the
 * rest change nothing here) and -bm; other -b modes are refused. Run by the
 * name sendmail (a symlink to bin/posta; main.ts), every argument is a flag.
 */
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { loadDomainKeys, SwitchLog } from '../dkim/switches.ts';
import { signingKeys } from '../dkim/rotation.ts';
import { Spool } from '../queue/spool.ts';
import { findDotLine } from '../submit/local.ts';
import { dropLocal, tooBig, type DropOptions } from '../submit/drop.ts';
import { thisUser } from '../submit/maildrop.ts';
import { submitToServer } from '../submit/socket.ts';
import { createBulk, httpsBase } from '../unsubscribe/fields.ts';
import { loadUnsubscribeSecret } from '../unsubscribe/token.ts';
import { createLogger } from '../log/log.ts';
import { str, type Args, type Command } from './command.ts';
import { actAsOwnerOf } from './privileges.ts';

export const sendmail: Command = {
  name: 'sendmail',
  asRoot: true,
  help: `Usage: posta sendmail [-t] [-f FROM] [-F NAME] [-i] [RCPT...] < message

Sendmail-compatible submission for programs on this machine (cron, PHP's
mail(), scripts): reads a message from standard input and hands it to the
posta serve that uses this config folder (over DATA/sendmail.sock), which
queues and delivers it. Any user of the machine may run it: it needs to read
posta.toml, not the keys or the queue, and no password. With no server
running, only the server's user can queue (the server delivers the message
when it starts).

  -t        take recipients also from the To, Cc and Bcc fields
  -f FROM   the envelope sender (default: the From address, else postmaster@
            the first domain); it must be an address of one of the domains
  -F NAME   the full name for the From field added when the message has none
  -i, -oi   a line with only "." does not end the message
  RCPT      recipients; a bare name (root) gets the first domain

Bcc fields are removed. Date and Message-ID are added when missing, and the
message is DKIM-signed when its From domain is one of the server's. Also
accepted and ignored: -odi, -odb, -oem and other -o options, -bm, -v, -N,
-B, -r (as -f). Prints nothing on success; a problem is one sentence on
stderr and exit status 1 (2 for wrong usage).

As the machine's sendmail (cron's MAILTO, PHP's mail()):
  ln -s /path/to/posta/bin/posta /usr/sbin/sendmail
Run by that name, every argument is a sendmail flag and, without --dir or
$POSTA_DIR, the config folder is /etc/posta (the link \`posta
install-service\` makes), else ./posta. The server records the local user
who ran it (from the kernel, not from what the client says) in the Received
field and its log: "from userid 33 www-data".`,
  options: {
    'read-recipients': { type: 'boolean', short: 't' },
    from: { type: 'string', short: 'f' },
    'return-path': { type: 'string', short: 'r' },
    'full-name': { type: 'string', short: 'F' },
    'ignore-dots': { type: 'boolean', short: 'i' },
    option: { type: 'string', short: 'o', multiple: true },
    mode: { type: 'string', short: 'b' },
    verbose: { type: 'boolean', short: 'v' },
    notify: { type: 'string', short: 'N' },
    'body-type': { type: 'string', short: 'B' },
  },
  async run(args) {
    const mode = str(args, 'mode');
    if (mode !== undefined && mode !== 'm') {
      throw new UsageError(
        `posta sendmail does not support -b${mode}; it only reads a message from standard input (-bm), and \`posta queue list\` shows the queue.`,
      );
    }
    const dashO = (args.values.option ?? []) as string[];
    const ignoreDots = args.values['ignore-dots'] === true || dashO.includes('i');
    const config = await loadConfig(args.dir);
    const input = await readMessage(process.stdin, ignoreDots, config.limits.messageSize);
    const options: DropOptions = {
      fromHeaders: args.values['read-recipients'] === true,
      recipients: args.positionals,
      sender: str(args, 'from') ?? str(args, 'return-path'),
      fullName: str(args, 'full-name'),
    };
    if ((await submitToServer(config.dataDir, input, options)) !== null) return;
    if (config.storage.url) {
      // the queue belongs to the nodes on the database, each under its lease
      throw new PostaError(
        `No posta server is running for ${config.dir}, and its queue is on PostgreSQL, which only a running server writes to; start \`posta serve\`, then send again.`,
      );
    }
    // No server running: queue it ourselves; the server delivers it when it starts.
    // Root does it as the folder's owner, so the queue stays the server's.
    const user = thisUser();
    actAsOwnerOf(config.dir, config.dataDir);
    const spool = openQueue(config.dataDir, args);
    try {
      // as the server adds them; what it would log about them is no news to a sendmail caller
      const bulk = createBulk(
        { base: httpsBase(config.hostname, config.listen.https), ...config.bulk },
        await loadUnsubscribeSecret(config.dataDir),
        createLogger({ level: 'silent' }),
      );
      await dropLocal(input, options, user, {
        bulk,
        domains: config.domains,
        hostname: config.hostname,
        messageSize: config.limits.messageSize,
        keys: async (domain) => {
          // as the server would sign: not with a rotation's pending keys (dkim/rotation.ts)
          const d = await loadDomainKeys(config.dir, domain, await SwitchLog.open(config.dataDir));
          return signingKeys(d.keys, d.plan, d.switchedAt);
        },
        enqueue: (envelope, data, id) =>
          spool.enqueue(envelope, data, id).catch((err: Error) => {
            throw new PostaError(
              `Cannot write the message to the queue in ${config.dataDir}: ${err.message}; check the disk and the folder's permissions.`,
            );
          }),
      });
    } finally {
      await spool.close();
    }
  },
};

/** Standard input up to its end, or up to a lone "." line unless `ignoreDots`. */
async function readMessage(
  stdin: NodeJS.ReadableStream,
  ignoreDots: boolean,
  limit: number,
): Promise<Buffer> {
  let buf = Buffer.alloc(0);
  let scan = 0;
  for await (const chunk of stdin) {
    buf = Buffer.concat([buf, chunk as Buffer]);
    if (buf.length > limit + 64 * 1024) throw tooBig(limit);
    if (ignoreDots) continue;
    const found = findDotLine(buf, scan, false);
    if ('at' in found) return buf.subarray(0, found.at);
    scan = found.resume;
  }
  if (ignoreDots) return buf;
  const found = findDotLine(buf, scan, true);
  return 'at' in found ? buf.subarray(0, found.at) : buf;
}

function openQueue(dataDir: string, args: Args): Spool {
  try {
    return new Spool(dataDir);
  } catch (err) {
    throw new PostaError(
      `No posta server is running for ${args.dir}, and this user cannot open its queue in ${dataDir} (${(err as Error).message}); start posta serve, or run posta sendmail as the user it runs as.`,
    );
  }
}
