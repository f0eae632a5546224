/**
 * Submitting one message to a submission server (RFC 6409) as a mail client
 * does, with nodemailer's SMTPConnection: TLS first (implicit on 465, else
 * STARTTLS, which is then required: AUTH never goes out in plaintext), AUTH,
 * one transaction, QUIT. Used by `posta send` to test a server end to end.
 *
 * The result says what a person checking a server wants to see: the TLS
 * version and cipher, whether the certificate verified, and the server's
 * final reply. A failure is a SubmitFailure naming the step and, when the
 * server answered, its reply.
 */
import type { TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { connectionStep } from '../delivery/step.ts';
import { isCertificateError, withoutNodeHint } from '../tls/error-text.ts';

export interface SubmitOptions {
  host: string;
  port: number;
  /** TLS from the first byte (port 465) instead of STARTTLS. */
  implicitTls: boolean;
  /** The name the certificate must carry (and SNI); undefined for none. */
  servername: string | undefined;
  /** Refuse a certificate that does not verify. */
  verify: boolean;
  user: string;
  pass: string;
  from: string;
  to: readonly string[];
  data: Buffer;
  timeoutMs?: number;
}

export interface SubmitResult {
  /** "TLSv1.3" and the like. */
  tls: string;
  cipher: string | undefined;
  verified: boolean;
  /** Why the certificate did not verify, when it did not. */
  authorizationError: string | undefined;
  /** The server's reply to the end of DATA, as it sent it. */
  reply: string;
  /** The queue id in a "queued as ID" reply. */
  queueId: string | undefined;
}

export type SubmitStep =
  | 'connect'
  | 'tls'
  /** TLS stopped because the server's certificate did not verify. */
  | 'certificate'
  | 'no-auth'
  | 'auth'
  | 'sender'
  | 'recipient'
  | 'data';

export class SubmitFailure extends Error {
  readonly step: SubmitStep;
  /** The server's reply, when the failure is one. */
  readonly reply: string | undefined;
  /** Node's error code, for a certificate that did not verify (DEPTH_ZERO_SELF_SIGNED_CERT...). */
  readonly code: string | undefined;
  constructor(step: SubmitStep, message: string, reply?: string, code?: string) {
    super(withoutNodeHint(message));
    this.step = step;
    this.reply = reply;
    this.code = code;
  }
}

interface NodemailerError extends Error {
  code?: string;
  /** The socket's own code when nodemailer set `code` to its own (ESOCKET, ETLS). */
  originalCode?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  rejectedErrors?: { recipient?: string; response?: string }[];
}

export async function submit(o: SubmitOptions): Promise<SubmitResult> {
  const timeout = o.timeoutMs ?? 30_000;
  const conn = new SMTPConnection({
    host: o.host,
    port: o.port,
    secure: o.implicitTls,
    requireTLS: !o.implicitTls,
    servername: o.servername,
    tls: {
      servername: o.servername,
      rejectUnauthorized: o.verify,
      minVersion: 'TLSv1.2',
    },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout,
    logger: false,
  });
  conn.on('error', () => {}); // failures reach the steps below
  try {
    await connectionStep(conn, (done) => conn.connect(done), connectFailure);
    const socket = conn._socket as TLSSocket | null | false;
    if (!socket || typeof socket.getProtocol !== 'function') {
      throw new SubmitFailure('tls', 'the connection is not encrypted');
    }
    const tls = {
      tls: socket.getProtocol() ?? 'TLS',
      cipher: socket.getCipher()?.standardName,
      verified: socket.authorized,
      authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
    };
    if (!conn.allowsAuth) throw new SubmitFailure('no-auth', 'the server does not offer AUTH');
    await connectionStep(
      conn,
      (done) => conn.login({ user: o.user, pass: o.pass }, done),
      (err: NodemailerError) => new SubmitFailure('auth', err.message, err.response),
    );
    const info = await new Promise<{ response: string }>((resolve, reject) => {
      const fail = (err?: NodemailerError | null) =>
        reject(sendFailure(err ?? new Error('the server closed the connection')));
      conn.once('error', fail);
      conn.once('end', fail);
      conn.send({ from: o.from, to: [...o.to] }, o.data, (err, result) => {
        conn.removeListener('error', fail);
        conn.removeListener('end', fail);
        if (err || !result) fail(err);
        else resolve(result);
      });
    });
    conn.quit();
    return {
      ...tls,
      reply: info.response,
      queueId: /queued as (\S+)/i.exec(info.response)?.[1],
    };
  } finally {
    setTimeout(() => conn.close(), 1000).unref();
  }
}

function connectFailure(err: NodemailerError): SubmitFailure {
  const nodeCode = err.originalCode ?? err.code;
  if (isCertificateError(nodeCode)) {
    return new SubmitFailure('certificate', err.message, undefined, nodeCode);
  }
  const tls =
    err.code === 'ETLS' ||
    /certificate|self[- ]signed|altnames|TLS|SSL|STARTTLS/i.test(
      `${err.code ?? ''} ${err.message}`,
    );
  if (err.response && (err.responseCode ?? 0) >= 400 && !tls) {
    return new SubmitFailure('connect', err.message, err.response);
  }
  return new SubmitFailure(tls ? 'tls' : 'connect', err.message, err.response);
}

function sendFailure(err: NodemailerError): SubmitFailure {
  if (err.command === 'MAIL FROM') return new SubmitFailure('sender', err.message, err.response);
  if (err.command === 'RCPT TO') {
    const r = err.rejectedErrors?.[0];
    return new SubmitFailure('recipient', err.message, r?.response ?? err.response);
  }
  if (err.response) return new SubmitFailure('data', err.message, err.response);
  return new SubmitFailure('connect', err.message);
}
