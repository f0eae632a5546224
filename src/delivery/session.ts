/**
 * One SMTP client session to a receiving server, on nodemailer's
 * SMTPConnection: connect to one address, EHLO with our hostname, STARTTLS,
 * optional AUTH (relay), then any number of transactions (connection reuse).
 *
 * nodemailer already does what a careful client must: it discards anything
 * the server sent in plaintext between its 220 to STARTTLS and the handshake
 * (RFC 3207 §6, STARTTLS response injection), caps the size of a reply
 * (maxResponseSize), and reports each RCPT refusal separately.
 *
 * What it lacks is a deadline for a whole reply (RFC 5321 §4.5.3.2): its
 * socketTimeout is an idle timer that every byte resets. deadline.ts keeps
 * one per command, fed by wrapping nodemailer's command writer, reply reader
 * and message stream (the same way SMTPUTF8 is added to MAIL FROM); a missed
 * deadline, or the attempt's ceiling, fails the session and destroys the
 * connection.
 *
 * SMTPUTF8 (RFC 6531 §3.4): a message whose header is UTF-8 (Job.smtpUtf8)
 * or whose envelope has a non-ASCII address goes with the SMTPUTF8 parameter
 * of MAIL FROM. nodemailer adds it only for non-ASCII addresses, so the
 * session appends it to MAIL FROM itself. A server that does not offer
 * SMTPUTF8 does not get such a message at all: every recipient fails with
 * 5.6.7 (RFC 6531 §3.2, RFC 6533 §3), rather than receive it corrupted.
 *
 * TLS modes:
 * - opportunistic: STARTTLS when offered, certificate checked but not
 *   required (RFC 7435); whether it verified is recorded per delivery.
 * - verified: STARTTLS required and the certificate must verify for the MX
 *   name (MTA-STS enforce, RFC 8461 §4.2); anything else fails the session.
 * - implicit: TLS from the first byte (a relay on port 465).
 * - none: no STARTTLS even when offered; only to retry a server whose TLS
 *   handshake failed, when nothing requires TLS (RFC 7435 opportunistic
 *   security prefers plaintext delivery to none at all).
 */
import type { Transform } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { SMTPConnectionSendInfo } from 'nodemailer/lib/smtp-connection';
import { fromReply, local, parseReply, type Outcome } from './outcome.ts';
import { connectionStep } from './step.ts';
import { commandOf, ReplyDeadlines } from './deadline.ts';
import { fastDotStuffing } from './dot-stuff.ts';
import type { Job } from './transport.ts';

/** nodemailer internals the session relies on: EHLO keywords, command writer, reply reader. */
interface ConnectionInternals {
  _supportedExtensions: string[];
  _responseQueue: string[];
  _socket: { destroy(): void } | null | false;
  _sendCommand(str: string, logStr?: string): void;
  _processResponse(): unknown;
  _createSendStream(callback: unknown): NodeJS.ReadableStream;
  _onError(err: Error, type: string, data: false, command: string): void;
}

export type TlsMode = 'opportunistic' | 'verified' | 'implicit' | 'none';

export interface SessionOptions {
  ip: string;
  port: number;
  /** The MX or relay host name: SNI and certificate name. */
  servername: string;
  /** Our EHLO name. */
  hostname: string;
  tls: TlsMode;
  localAddress?: string;
  connectTimeoutMs: number;
  /** The longest wait for one reply (`[delivery] reply_timeout`), below the RFC times. */
  replyTimeoutMs: number;
  /** The ceiling on one attempt (`[delivery] attempt_timeout`), for its text. */
  attemptTimeoutMs: number;
  auth?: { user: string; pass: string };
}

export interface TlsInfo {
  tls?: string;
  tlsVerified?: boolean;
}

/** A session that could not be set up: the outcome, and whether another host may do better. */
export class SessionFailure extends Error {
  readonly outcome: Outcome;
  /** The TLS handshake failed (the server may still take mail without TLS). */
  readonly tlsFailed: boolean;
  constructor(outcome: Outcome, tlsFailed = false) {
    super(outcome.reply.text);
    this.outcome = outcome;
    this.tlsFailed = tlsFailed;
  }
}

const MAX_RESPONSE = 64 * 1024;

export class Session {
  readonly options: SessionOptions;
  readonly info: TlsInfo;
  messages = 0;
  lastUsed = Date.now();
  /** Resolves when the connection is closed, by either side. */
  readonly ended: Promise<void>;
  private conn: SMTPConnection;
  private deadlines: ReplyDeadlines;
  private broken = false;
  /** After a refused transaction the server may keep state: RSET first (RFC 5321 §4.1.1.5). */
  private dirty = false;
  /** The transaction under way needs SMTPUTF8 on its MAIL FROM. */
  private smtpUtf8 = false;

  private constructor(
    conn: SMTPConnection,
    options: SessionOptions,
    info: TlsInfo,
    deadlines: ReplyDeadlines,
  ) {
    this.conn = conn;
    this.options = options;
    this.info = info;
    this.deadlines = deadlines;
    this.ended = new Promise((resolve) => conn.once('end', () => resolve()));
    conn.on('error', () => (this.broken = true));
    conn.on('end', () => (this.broken = true));
    const internals = conn as unknown as ConnectionInternals;
    const write = internals._sendCommand.bind(conn);
    internals._sendCommand = (str, logStr) =>
      write(
        this.smtpUtf8 && /^MAIL FROM:/i.test(str) && !/ SMTPUTF8\b/i.test(str)
          ? `${str} SMTPUTF8`
          : str,
        logStr,
      );
  }

  /** The server offered SMTPUTF8 in its EHLO reply. */
  get offersSmtpUtf8(): boolean {
    return (this.conn as unknown as ConnectionInternals)._supportedExtensions.includes('SMTPUTF8');
  }

  get usable(): boolean {
    return !this.broken && !this.conn.destroyed;
  }

  /** Open a session for an attempt that must be over by `until` (epoch ms). */
  static async open(o: SessionOptions, until: number): Promise<Session> {
    // RFC 6066 §3: SNI names a host, never an address (a relay given as an IP).
    const servername = isIP(o.servername) ? undefined : o.servername;
    const conn = new SMTPConnection({
      host: o.ip,
      port: o.port,
      servername,
      name: o.hostname,
      localAddress: o.localAddress,
      secure: o.tls === 'implicit',
      requireTLS: o.tls === 'verified',
      opportunisticTLS: o.tls === 'opportunistic',
      ignoreTLS: o.tls === 'none',
      tls: {
        servername,
        rejectUnauthorized: o.tls !== 'opportunistic',
        minVersion: o.tls === 'opportunistic' ? 'TLSv1' : 'TLSv1.2',
      },
      connectionTimeout: Math.max(1, Math.min(o.connectTimeoutMs, until - Date.now())),
      // RFC 5321 §4.5.3.2.1 asks 5 minutes for the greeting; nodemailer 10
      // counts it (and STARTTLS) within the setup budget of connectionTimeout.
      greetingTimeout: 5 * 60_000,
      // An idle timer only; the deadlines of deadline.ts bound each whole reply.
      socketTimeout: 10 * 60_000, // RFC 5321 §4.5.3.2.6, the longest wait
      maxResponseSize: MAX_RESPONSE,
      logger: false,
    });
    conn.on('error', () => {}); // after setup, failures reach the send callbacks
    const deadlines = watchReplies(conn, o);
    deadlines.begin(until, o.attemptTimeoutMs);
    try {
      await connectionStep(
        conn,
        (done) => conn.connect(done),
        (err) => setupFailure(err, o, conn),
      );
      const info = tlsInfo(conn);
      if ((o.tls === 'verified' || o.tls === 'implicit') && !info.tls) {
        throw new SessionFailure(local('transient', '4.7.5', `${o.servername} did not offer TLS`));
      }
      const auth = o.auth;
      if (auth)
        await connectionStep(
          conn,
          (done) => conn.login({ user: auth.user, pass: auth.pass }, done),
          (err) => setupFailure(err, o, conn),
        );
      return new Session(conn, o, info, deadlines);
    } catch (err) {
      deadlines.stop();
      conn.close();
      throw err;
    }
  }

  /**
   * One transaction. Resolves with an outcome per recipient; never rejects.
   * `unsent` is true when the failure came before a byte of the message went
   * out, so the caller may try again on a fresh connection.
   */
  async send(
    m: Pick<Job, 'sender' | 'recipients' | 'message' | 'smtpUtf8'>,
    until: number,
  ): Promise<{ outcomes: Map<string, Outcome>; unsent: boolean }> {
    this.deadlines.begin(until, this.options.attemptTimeoutMs);
    try {
      return await this.transaction(m);
    } finally {
      this.deadlines.end();
    }
  }

  private async transaction(
    m: Pick<Job, 'sender' | 'recipients' | 'message' | 'smtpUtf8'>,
  ): Promise<{ outcomes: Map<string, Outcome>; unsent: boolean }> {
    const { sender, recipients, message } = m;
    // RFC 6531 §3.4: SMTPUTF8 when the header or an envelope address needs it.
    this.smtpUtf8 = m.smtpUtf8 || [sender, ...recipients].some((a) => /[^\x20-\x7e]/.test(a));
    if (this.smtpUtf8 && !this.offersSmtpUtf8) {
      // RFC 6531 §3.2: not to a server without SMTPUTF8; the sender gets a DSN.
      const o = local(
        'permanent',
        '5.6.7',
        `${this.options.servername} does not support SMTPUTF8, which this message needs (its header or an address is not ASCII)`,
      );
      return { outcomes: new Map(recipients.map((r) => [r, o])), unsent: false };
    }
    if (this.dirty) await this.reset();
    this.messages++;
    this.lastUsed = Date.now();
    const outcomes = new Map<string, Outcome>();
    const result = await this.settle<{ info?: SMTPConnectionSendInfo; err?: SendError }>(
      (done) =>
        this.conn.send(
          {
            from: sender === '' ? false : sender,
            to: [...recipients],
            size: message.size,
            use8BitMime: true,
          },
          message.open(),
          (err, info) => done(err ? { err } : { info }),
        ),
      (err) => ({ err }),
    );
    this.lastUsed = Date.now();
    // A refused DATA carries no per-recipient errors; the envelope still has them.
    const envelope = (
      this.conn as unknown as { _envelope?: { rejectedErrors?: SendError['rejectedErrors'] } }
    )._envelope;
    const rejected =
      result.info?.rejectedErrors ?? result.err?.rejectedErrors ?? envelope?.rejectedErrors ?? [];
    for (const r of rejected) {
      const reply = parseReply(r.response, r.responseCode);
      if (r.recipient && reply) outcomes.set(r.recipient, fromReply(reply));
    }
    let rest: Outcome;
    let unsent = false;
    if (result.info) {
      rest = fromReply(
        parseReply(result.info.response, 250) ?? { code: 250, enhanced: '2.0.0', text: 'OK' },
      );
    } else {
      const err = result.err as SendError;
      const reply = parseReply(err.response, err.responseCode);
      if (reply && reply.code >= 400) {
        rest = fromReply(reply);
        if (reply.code === 421) this.broken = true;
      } else if (err.deadline) {
        this.broken = true;
        rest = local('transient', '4.4.2', err.message);
      } else {
        this.broken = true;
        unsent = err.command !== 'DATA' && err.command !== 'DATA-STREAM';
        rest = local(
          'transient',
          '4.4.2',
          `Connection to ${this.options.servername} failed: ${err.message}`,
        );
      }
    }
    for (const r of recipients) if (!outcomes.has(r)) outcomes.set(r, rest);
    this.dirty = result.info === undefined;
    return { outcomes, unsent: unsent && rejected.length === 0 };
  }

  private async reset(): Promise<void> {
    const ok = await this.settle<boolean>(
      (done) => this.conn.reset((err) => done(!err)),
      () => false,
    );
    if (!ok) this.broken = true;
    this.dirty = false;
  }

  /**
   * Wait for a nodemailer callback, or for the connection to fail, whichever
   * comes first: a dropped connection must end the wait, never hang it.
   */
  private settle<T>(
    start: (done: (v: T) => void) => void,
    onFail: (err: SendError) => T,
  ): Promise<T> {
    return new Promise<T>((resolve) => {
      // nodemailer closes the connection (and emits 'end') just before it
      // calls back with the reply that made it close (a 421): wait a turn,
      // so that the reply, not "closed the connection", is what is kept.
      const fail = (err?: Error) => {
        this.broken = true;
        setImmediate(() => resolve(onFail(err ?? new Error('the server closed the connection'))));
      };
      this.conn.once('error', fail);
      this.conn.once('end', fail);
      start((v) => {
        this.conn.removeListener('error', fail);
        this.conn.removeListener('end', fail);
        resolve(v);
      });
    });
  }

  close(): void {
    this.broken = true;
    this.deadlines.stop();
    this.conn.quit();
    setTimeout(() => this.conn.close(), 1000).unref();
  }

  /** Drop the connection now, mid-transaction if need be (posta is stopping). */
  destroy(): void {
    this.broken = true;
    this.deadlines.stop();
    this.conn.close();
    const socket = (this.conn as unknown as ConnectionInternals)._socket;
    if (socket) socket.destroy();
  }
}

/**
 * Feed the deadlines from nodemailer: each command written, each whole reply
 * read (a multi-line reply is whole at its last line), and the message
 * stream's blocks and end. A missed one fails the session with its text and
 * destroys the socket.
 */
function watchReplies(conn: SMTPConnection, o: SessionOptions): ReplyDeadlines {
  const internals = conn as unknown as ConnectionInternals;
  const deadlines = new ReplyDeadlines({
    replyMs: o.replyTimeoutMs,
    server: o.servername,
    onMiss: (text) => {
      internals._onError(
        Object.assign(new Error(text), { deadline: true }),
        'ETIMEDOUT',
        false,
        'CONN',
      );
      if (internals._socket) internals._socket.destroy();
    },
  });
  const write = internals._sendCommand.bind(conn);
  internals._sendCommand = (str, logStr) => {
    deadlines.expect(commandOf(str));
    write(str, logStr);
  };
  const read = internals._processResponse.bind(conn);
  internals._processResponse = () => {
    const next = internals._responseQueue[0]?.trim();
    if (next && !/^\d{3}-/.test(next.split('\n').at(-1) ?? '')) deadlines.replied();
    return read();
  };
  const stream = internals._createSendStream.bind(conn);
  internals._createSendStream = (callback) => {
    const s = stream(callback);
    fastDotStuffing(s as Transform);
    deadlines.expect('a data block');
    s.on('data', () => deadlines.progress());
    s.once('end', () => {
      deadlines.replied();
      deadlines.expect('the end of data');
    });
    return s;
  };
  conn.once('end', () => deadlines.stop());
  return deadlines;
}

interface SendError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  /** A deadline of deadline.ts was missed; the message says which. */
  deadline?: boolean;
  rejectedErrors?: { recipient?: string; response?: string; responseCode?: number }[];
}

function tlsInfo(conn: SMTPConnection): TlsInfo {
  const socket = conn._socket as TLSSocket | null | false;
  if (!socket || typeof socket.getProtocol !== 'function') return {};
  return { tls: socket.getProtocol() ?? 'TLS', tlsVerified: socket.authorized };
}

/** Connect, greeting, EHLO, STARTTLS or AUTH failed: say why, in reply form. */
function setupFailure(err: unknown, o: SessionOptions, conn: SMTPConnection): SessionFailure {
  const e = err as SendError;
  // With TLS 1.3 a server that refuses the handshake (a client certificate
  // it wants, a cipher it dislikes) may only hang up after it: a connection
  // lost once STARTTLS began counts as a TLS failure.
  const inTls = conn.upgrading === true || conn.secure;
  const reply = parseReply(e.response, e.responseCode);
  const where = `${o.servername} [${o.ip}]:${o.port}`;
  if (e.deadline) return new SessionFailure(local('transient', '4.4.2', e.message));
  if (reply && reply.code >= 400) {
    return new SessionFailure(fromReply({ ...reply, text: `${where} said: ${reply.text}` }));
  }
  if (e.code === 'ETLS' || inTls || /certificate|TLS|SSL/i.test(e.message)) {
    return new SessionFailure(
      local('transient', '4.7.5', `TLS with ${where} failed: ${e.message}`),
      true,
    );
  }
  const enhanced = e.code === 'ETIMEDOUT' ? '4.4.2' : '4.4.1';
  return new SessionFailure(local('transient', enhanced, `Cannot talk to ${where}: ${e.message}`));
}
