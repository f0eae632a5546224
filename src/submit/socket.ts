/**
 * The local submission socket: how `posta sendmail`, run by any user of the
 * machine (PHP as www-data, cron jobs, scripts), hands a message to the
 * running server, as Postfix's postdrop does through its world-writable
 * maildrop folder. The server prepares, signs and queues it (drop.ts) with
 * the keys and the queue only it can read; the client needs no password and
 * no access to the queue.
 *
 * - Where: DATA/sendmail.sock, mode 0666. The data folder is 0711: others may
 *   reach a name in it but not list it or create one, so no other user can
 *   put a socket of their own in its place; everything else the server keeps
 *   there is private (the server runs with umask 077, see serve.ts, and the
 *   queue files are made 0600) but DATA/maildrop (mode 1733), where anyone
 *   may add an empty token file, as the next point says.
 * - Who: any local user, as with sendmail(8) everywhere. The sender must
 *   still be an address of the server's domains (local.ts). The user is
 *   proved by a token file in DATA/maildrop (maildrop.ts), and recorded in
 *   the Received field and the log line, as Postfix's "from userid 33".
 * - Protocol: HTTP. POST /sendmail whose body is one line of JSON with the
 *   sendmail flags and the token's name, then the message; the answer is
 *   {"queueId"} once the message is fsync'd, else {"error", "usage"}.
 * - Limits: 8 clients at once, each with 30 s to send its request.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:http';
import { join } from 'node:path';
import { PostaError, UsageError } from '../errors.ts';
import type { Logger } from '../log/log.ts';
import { dropLocal, tooBig, type DropContext, type DropOptions } from './drop.ts';
import {
  MAILDROP,
  createToken,
  describeUser,
  makeMaildrop,
  removeToken,
  takeToken,
} from './maildrop.ts';

export const SENDMAIL_SOCKET = 'sendmail.sock';
const MAX_CLIENTS = 8;
const REQUEST_TIMEOUT_MS = 30_000;

export async function startLocalSubmission(
  dataDir: string,
  ctx: DropContext,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  const server: Server = createServer({ requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
    const answer = (status: number, body: object) =>
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    if (req.method !== 'POST' || req.url !== '/sendmail') {
      answer(404, { error: 'Unknown request.' });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const limit = ctx.messageSize + 64 * 1024; // the options line, and CRs the message may gain
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => {
      if (size > limit) {
        answer(413, { error: tooBig(ctx.messageSize).message });
        return;
      }
      const body = Buffer.concat(chunks);
      const nl = body.indexOf(0x0a);
      let options: DropOptions & { token: unknown };
      try {
        options = parseOptions(body.subarray(0, nl < 0 ? body.length : nl).toString('utf8'));
      } catch {
        answer(400, {
          error: 'The request does not start with the sendmail options.',
          usage: true,
        });
        return;
      }
      const submit = async () => {
        const user = await takeToken(dataDir, options.token);
        if (!user) {
          throw new PostaError(
            `The server could not tell which user runs posta sendmail: that user must be able to create a file in ${join(dataDir, MAILDROP)} (mode 1733, made by posta serve).`,
          );
        }
        return { user, ...(await dropLocal(body.subarray(nl + 1), options, user, ctx)) };
      };
      submit().then(
        (r) => {
          log.info(
            {
              qid: r.queueId,
              from: r.sender,
              rcpts: r.recipients,
              via: 'sendmail',
              user: describeUser(r.user),
            },
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
  await makeMaildrop(dataDir);
  server.maxConnections = MAX_CLIENTS;
  server.headersTimeout = REQUEST_TIMEOUT_MS;
  const path = join(dataDir, SENDMAIL_SOCKET);
  await unlink(path).catch(() => {}); // left by a crash: a running server holds the queue first
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  await chmod(path, 0o666);
  await chmod(dataDir, 0o711); // reachable by name, not listable, not writable
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // a client that stalls must not hold up the shutdown
      }),
  };
}

function parseOptions(line: string): DropOptions & { token: unknown } {
  const o = JSON.parse(line) as Partial<DropOptions> & { token?: unknown };
  if (!Array.isArray(o.recipients) || !o.recipients.every((r) => typeof r === 'string')) {
    throw new Error('recipients');
  }
  const optional = (v: unknown) => (typeof v === 'string' ? v : undefined);
  return {
    fromHeaders: o.fromHeaders === true,
    recipients: o.recipients,
    sender: optional(o.sender),
    fullName: optional(o.fullName),
    token: o.token,
  };
}

/**
 * Hand a message to the server whose data folder is `dataDir`. Resolves with
 * its queue id, or null when no server listens; a refusal throws the
 * server's sentence (a UsageError for wrong usage).
 */
export async function submitToServer(
  dataDir: string,
  message: Buffer,
  options: DropOptions,
): Promise<string | null> {
  const token = await createToken(dataDir);
  try {
    return await post(
      dataDir,
      Buffer.concat([Buffer.from(`${JSON.stringify({ ...options, token })}\n`), message]),
    );
  } finally {
    await removeToken(dataDir, token); // the server removes it once used; this is for a refusal
  }
}

function post(dataDir: string, body: Buffer): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath: join(dataDir, SENDMAIL_SOCKET),
        method: 'POST',
        path: '/sendmail',
        headers: { 'content-length': body.length },
        timeout: 60_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let answer: { queueId?: string; error?: string; usage?: boolean };
          try {
            answer = JSON.parse(text) as typeof answer;
          } catch {
            reject(new PostaError(`The server answered ${res.statusCode ?? '?'} without JSON.`));
            return;
          }
          if (res.statusCode === 200 && answer.queueId) resolve(answer.queueId);
          else {
            const sentence = answer.error ?? `The server answered ${res.statusCode ?? '?'}.`;
            reject(answer.usage ? new UsageError(sentence) : new PostaError(sentence));
          }
        });
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error('the server did not answer within 60 s; the message may be queued')),
    );
    req.on('error', (err: NodeJS.ErrnoException) =>
      // No socket, or one nobody listens on (left by a crash): no server is running.
      err.code === 'ECONNREFUSED' || err.code === 'ENOENT'
        ? resolve(null)
        : reject(new PostaError(`Cannot hand the message to the posta server: ${err.message}.`)),
    );
    req.end(body);
  });
}
