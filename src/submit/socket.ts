/**
 * The local submission socket: how `posta sendmail`, run by any user of the
 * machine (PHP as www-data, cron jobs, scripts), hands a message to the
 * running server, as Postfix's postdrop does through its world-writable
 * maildrop folder. The server prepares, signs and queues it (drop.ts) with
 * the keys and the queue only it can read; the client needs no password and
 * no access to data/.
 *
 * - Where: a Linux abstract socket (no file, so no permissions and nothing
 *   left behind by a crash) named after the real path of the config folder,
 *   so each server has its own and `--dir` finds it.
 * - Who: any local user, as with sendmail(8) everywhere. The sender must
 *   still be an address of the server's domains (local.ts).
 * - Protocol: HTTP. POST /sendmail with the sendmail flags as JSON in the
 *   X-Posta-Options header and the message as the body; the answer is
 *   {"queueId"} once the message is fsync'd, else {"error", "usage"}.
 */
import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { PostaError, UsageError } from '../errors.ts';
import type { Logger } from '../log/log.ts';
import { dropLocal, tooBig, type DropContext, type DropOptions } from './drop.ts';

/** The abstract socket name for the config folder `dir`. */
export async function submitSocket(dir: string): Promise<string> {
  const real = await realpath(dir).catch(() => dir);
  return `\0posta-sendmail-${createHash('sha256').update(real).digest('hex').slice(0, 32)}`;
}

export async function startLocalSubmission(
  dir: string,
  ctx: DropContext,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const answer = (status: number, body: object) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'POST' || req.url !== '/sendmail') {
      answer(404, { error: 'Unknown request.' });
      return;
    }
    let options: DropOptions;
    try {
      options = parseOptions(req.headers['x-posta-options']);
    } catch {
      answer(400, { error: 'The request has no valid X-Posta-Options header.', usage: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= ctx.messageSize) chunks.push(c);
    });
    req.on('end', () => {
      if (size > ctx.messageSize) {
        answer(413, { error: tooBig(ctx.messageSize).message });
        return;
      }
      dropLocal(Buffer.concat(chunks), options, ctx).then(
        (r) => {
          log.info(
            { qid: r.queueId, from: r.sender, rcpts: r.recipients, via: 'sendmail' },
            'accepted',
          );
          answer(200, { queueId: r.queueId });
        },
        (err: Error) => {
          if (!(err instanceof PostaError)) {
            log.error({ err: err.message }, 'local submission failed');
          }
          answer(err instanceof PostaError ? 400 : 500, {
            error:
              err instanceof PostaError
                ? err.message
                : `The server could not queue the message: ${err.message}`,
            usage: err instanceof UsageError,
          });
        },
      );
    });
  });
  const name = await submitSocket(dir);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(name, () => resolve());
  });
  return { close: () => new Promise<void>((r) => server.close(() => r())) };
}

function parseOptions(header: string | string[] | undefined): DropOptions {
  const o = JSON.parse(String(header)) as Partial<DropOptions>;
  if (!Array.isArray(o.recipients) || !o.recipients.every((r) => typeof r === 'string')) {
    throw new Error('recipients');
  }
  const optional = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    fromHeaders: o.fromHeaders === true,
    recipients: o.recipients,
    sender: optional(o.sender),
    fullName: optional(o.fullName),
  };
}

/**
 * Hand a message to the server running on the config folder `dir`. Resolves
 * with its queue id, or null when no server listens; a refusal throws the
 * server's sentence (a UsageError for wrong usage).
 */
export async function submitToServer(
  dir: string,
  message: Buffer,
  options: DropOptions,
): Promise<string | null> {
  const socketPath = await submitSocket(dir);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: 'POST',
        path: '/sendmail',
        headers: {
          'x-posta-options': JSON.stringify(options),
          'content-length': message.length,
        },
        timeout: 60_000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          let answer: { queueId?: string; error?: string; usage?: boolean };
          try {
            answer = JSON.parse(body) as typeof answer;
          } catch {
            reject(new PostaError(`The server answered ${res.statusCode ?? '?'} without JSON.`));
            return;
          }
          if (res.statusCode === 200 && answer.queueId) resolve(answer.queueId);
          else {
            const text = answer.error ?? `The server answered ${res.statusCode ?? '?'}.`;
            reject(answer.usage ? new UsageError(text) : new PostaError(text));
          }
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error('the server did not answer within 60 s; the message may be queued')),
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
        ? resolve(null)
        : reject(new PostaError(`Cannot reach the posta server: ${err.message}.`)),
    );
    req.end(message);
  });
}
