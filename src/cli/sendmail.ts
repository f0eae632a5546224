/**
 * `posta sendmail`: the sendmail(8) interface for programs on this machine.
 * Like Postfix's postdrop it writes the message straight into the queue
 * (data/queue.db) and exits; the running `posta serve` finds it within a
 * second and delivers it. The message is prepared as submission prepares it
 * (submit/local.ts): Date, Message-ID, Received, DKIM.
 *
 * The flags that programs pass to sendmail are accepted: -t, -f, -F, -i, -r
 * (an old -f), -v, -N, -B, -o with any option (-oi is -i; -odi, -oem and the
 * rest change nothing here) and -bm; other -b modes are refused.
 */
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig } from '../config/load.ts';
import { dkimDir } from '../config/paths.ts';
import { loadKeys } from '../dkim/keys.ts';
import { newQueueId, Spool } from '../queue/spool.ts';
import { findDotLine, prepareLocal, stampLocal } from '../submit/local.ts';
import { str, type Args, type Command } from './command.ts';

export const sendmail: Command = {
  name: 'sendmail',
  help: `Usage: posta sendmail [-t] [-f FROM] [-F NAME] [-i] [RCPT...] < message

Sendmail-compatible submission for programs on this machine (cron, PHP's
mail(), scripts): reads a message from standard input and puts it in the
queue of the posta serve that uses this config folder, which delivers it. No
password is needed, only write access to the folder's data/ directory, so run
it as the user posta serve runs as (or give that user's group write access).

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

PHP:  sendmail_path = "/path/to/posta sendmail -t -i --dir /etc/posta"
cron: MAILTO=you@example.com, with posta sendmail as /usr/sbin/sendmail`,
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
    const options = (args.values.option ?? []) as string[];
    const ignoreDots = args.values['ignore-dots'] === true || options.includes('i');
    const config = await loadConfig(args.dir);
    const input = await readMessage(process.stdin, ignoreDots, config.limits.messageSize);

    const message = prepareLocal({
      data: input,
      fromHeaders: args.values['read-recipients'] === true,
      recipients: args.positionals,
      sender: str(args, 'from') ?? str(args, 'return-path'),
      fullName: str(args, 'full-name'),
      domains: config.domains,
    });
    const queueId = newQueueId();
    const { fromDomain } = message;
    const keys =
      fromDomain && config.domains.includes(fromDomain)
        ? await loadKeys(dkimDir(config.dir, fromDomain))
        : [];
    const { data, messageId } = stampLocal(message, {
      hostname: config.hostname,
      queueId,
      date: new Date(),
      keys,
    });
    if (data.length > config.limits.messageSize) throw tooBig(config.limits.messageSize);
    await enqueue(config.dataDir, args, {
      envelope: {
        sender: message.sender,
        recipients: message.recipients,
        source: 'submission',
        account: undefined,
        clientIp: '127.0.0.1',
        messageId,
      },
      data,
      queueId,
    });
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

function tooBig(limit: number): PostaError {
  return new PostaError(
    `The message is larger than the limit of ${limit} bytes ([limits] message_size in posta.toml).`,
  );
}

async function enqueue(
  dataDir: string,
  args: Args,
  m: { envelope: Parameters<Spool['enqueue']>[0]; data: Buffer; queueId: string },
): Promise<void> {
  let spool: Spool;
  try {
    spool = new Spool(dataDir);
  } catch (err) {
    throw new PostaError(
      `Cannot open the queue in ${dataDir} (${(err as Error).message}); run posta sendmail as the user posta serve runs as, or give --dir the right config folder (now ${args.dir}).`,
    );
  }
  try {
    await spool.enqueue(m.envelope, m.data, m.queueId);
  } catch (err) {
    throw new PostaError(
      `Cannot write the message to the queue in ${dataDir}: ${(err as Error).message}; check the disk and the folder's permissions.`,
    );
  } finally {
    spool.close();
  }
}
