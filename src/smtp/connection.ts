/**
 * smtp-server's server and connection, with what posta adds at the wire:
 *
 * - Strict line endings in commands: smtp-server ends a command line at a bare
 *   LF too; RFC 5321 §2.3.8 allows only CRLF, and accepting bare LF is the root
 *   of SMTP smuggling. A command line with a bare LF or CR is refused with 500
 *   5.5.2 and the connection closed. (DATA is checked in receive.ts.)
 * - Replies whose text starts with an enhanced status code (SmtpReply) are
 *   sent without smtp-server's default enhanced code in front.
 * - Errors per session: after `maxErrors` 5xx/4xx replies, 421 and close;
 *   every 421 closes the connection (RFC 5321 §3.8).
 * - AUTH is left out of the EHLO reply until the connection is encrypted.
 * - Timers (in the spirit of Postfix's smtpd_timeout, smtpd_per_request_deadline
 *   and smtpd_min_data_rate), in place of smtp-server's socket idle timeout, which
 *   any byte resets:
 *   - each command line must be complete within the timeout from the previous
 *     one (a client trickling a byte now and then does not extend it): the
 *     pre-MAIL timeout until a transaction starts (after the greeting, between
 *     messages) unless the client has logged in, the command timeout inside
 *     one (RFC 5321 §4.5.3.2);
 *   - DATA gets the timeout plus one second per MIN_DATA_RATE octets that
 *     arrived, and the timeout since the last byte, whichever ends first;
 *   - stress: while the listener holds more than half of its `connections`,
 *     every timeout is the stress timeout (logged when it starts and ends);
 *   - a whole-session time limit over all of it.
 *   When the client is waiting for posta (a handler has not answered), no
 *   timeout runs.
 * - An address whose domain has "xn--" labels reaches posta as it was sent:
 *   smtp-server decodes them (punycode, no IDNA check), which turns an invalid
 *   A-label into another name or control characters (xn--a is U+0080).
 *
 * These need the connection object, which smtp-server's options do not expose,
 * hence the subclasses (through smtp-server's public, typed connect()).
 */
import type { Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { bareLineEnding } from '../message/lines.ts';
import { fastDataStream } from './data-stream.ts';

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

/** Octets a second a DATA phase must average (Postfix's smtpd_min_data_rate). */
export const MIN_DATA_RATE = 500;

export interface WireLimits {
  maxErrors: number;
  sessionTimeoutMs: number;
  /** Idle time allowed inside a transaction (after MAIL). */
  commandTimeoutMs: number;
  /** Idle time allowed before a transaction: after the greeting, between messages. */
  preMailTimeoutMs: number;
  /** Every idle timeout while the listener is under stress. */
  stressTimeoutMs: number;
  /** The listener's connection limit; stress starts past half of it. */
  maxClients: number;
  /** Called when stress mode starts (true) and ends (false). */
  onStress: (on: boolean, connections: number) => void;
}

/** Stress ends once the connections fall below this share of the limit (hysteresis). */
const STRESS_ON = 0.5;
const STRESS_OFF = 0.4;

class StrictConnection extends SMTPConnection {
  private errors = 0;
  owner!: PostaSMTPServer;
  /** When the last command line was complete (or the session or DATA began). */
  private lastEvent = Date.now();
  private lastByte = Date.now();
  private dataStart = 0;
  private dataBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedAt = 0;

  get limits(): WireLimits {
    return this.owner.limits;
  }

  /** The idle timeout that applies now. */
  private timeoutMs(): number {
    if (this.owner.stressed) return this.limits.stressTimeoutMs;
    // RFC 5321 §4.5.3.2.7 asks for 5 minutes; a client that has neither logged
    // in nor started a transaction gets the shorter pre-MAIL timeout (Postfix
    // and postscreen cut such clients short as well).
    return this.session.envelope?.mailFrom || this.session.user
      ? this.limits.commandTimeoutMs
      : this.limits.preMailTimeoutMs;
  }

  /** When the client's time runs out, as things stand. */
  private dueAt(): number {
    const t = this.timeoutMs();
    if (this._parser && this._parser._dataMode) {
      const rate = this.dataStart + t + (this.dataBytes * 1000) / MIN_DATA_RATE;
      return Math.min(rate, this.lastByte + t);
    }
    return this.lastEvent + t;
  }

  /** (Re)arms the one timer for dueAt(); cheap to call on every change. */
  rearm(): void {
    const due = this.dueAt();
    if (this.timer && this.armedAt <= due) return; // fires first, then looks again
    clearTimeout(this.timer);
    this.armedAt = due;
    this.timer = setTimeout(() => this.onDeadline(), Math.max(0, due - Date.now()));
    this.timer.unref();
  }

  private onDeadline(): void {
    this.timer = undefined;
    if (this._closed) return;
    if (this._closing) {
      this._socket.destroy();
      return;
    }
    // The client waits for posta: a handler has not answered yet, or the whole
    // message is in and onData has not decided. Its time starts when posta answers.
    if (this._handlerPending || (this._dataStream && this._parser && !this._parser._dataMode)) {
      this.lastEvent = this.lastByte = Date.now();
      this.rearm();
      return;
    }
    if (Date.now() < this.dueAt()) return this.rearm();
    const data = this._parser && this._parser._dataMode;
    this.send(
      421,
      data
        ? '4.4.2 Timeout: the message arrives too slowly; closing'
        : '4.4.2 Timeout: no command in time; closing',
      false,
    );
  }

  /** smtp-server's socket idle timeout is replaced by rearm(). */
  override _armTimeout(socket?: Socket): void {
    (socket ?? this._socket).setTimeout(0);
    this.lastEvent = this.lastByte = Date.now();
    this.rearm();
  }

  override _onTimeout(): void {
    this.onDeadline();
  }

  override _onCommand(command: Buffer, callback?: () => void): void {
    this.lastEvent = this.lastByte = Date.now();
    this.dataStart = this.dataBytes = 0;
    this.rearm();
    super._onCommand(command, callback);
  }

  override _onClose(): void {
    clearTimeout(this.timer);
    super._onClose();
  }

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    fastDataStream(parser);
    const write = parser._write.bind(parser);
    let last = 0;
    parser._write = (
      chunk: Buffer,
      encoding: BufferEncoding,
      next: (err?: Error | null) => void,
    ) => {
      if (!parser._dataMode && !parser.isClosed && bareLineEnding(chunk, last) !== null) {
        parser.isClosed = true;
        this.send(500, '5.5.2 Line endings must be CRLF (RFC 5321 section 2.3.8); closing');
        this.close();
        return next();
      }
      if (chunk.length) last = chunk[chunk.length - 1] ?? 0;
      if (parser._dataMode) {
        this.lastByte = Date.now();
        if (this.dataStart === 0) this.dataStart = this.lastByte;
        this.dataBytes += chunk.length;
      }
      write(chunk, encoding, next);
    };
    return parser;
  }

  override _parseAddressCommand(name: string, command: Buffer | string) {
    const parsed = super._parseAddressCommand(name, command);
    // Only when the received domain has an A-label: valid ones are checked
    // again by parseDomain (address.ts), invalid ones then refused as sent.
    const sent = /^[^:]*:\s*<([^<>]*)@([^<>@]*)>/.exec(command.toString())?.[2];
    if (parsed && parsed.address && sent && /(^|\.)xn--/i.test(sent)) {
      const at = parsed.address.lastIndexOf('@');
      parsed.address = `${parsed.address.slice(0, at)}@${sent}`;
    }
    return parsed;
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (code === 538) {
      // smtp-server's reply to AUTH before TLS; RFC 3207 §4 gives 530 5.7.0 for it.
      code = 530;
      data = '5.7.0 Must issue a STARTTLS command first';
    }
    const own = typeof data === 'string' && ENHANCED.test(data);
    if (code === 250 && Array.isArray(data) && !this.secure) {
      // AUTH is offered only after TLS (RFC 4954 §4; RFC 8314 §3.3).
      data = data.filter((line) => !line.startsWith('AUTH '));
    }
    super.send(code, data, own ? false : context);
    if (code === 421) {
      this.close();
      return;
    }
    if (code >= 400 && code !== 421 && ++this.errors >= this.limits.maxErrors) {
      super.send(421, '4.7.0 Too many errors in this session; closing', false);
      this.close();
    }
  }
}

export class PostaSMTPServer extends SMTPServer {
  readonly limits: WireLimits;
  stressed = false;

  constructor(options: SMTPServerOptions, limits: WireLimits) {
    super(options);
    this.limits = limits;
  }

  /** Stress starts past half of the connection limit and ends below 40% of it. */
  private checkStress(): void {
    const n = this.connections.size;
    const max = this.limits.maxClients;
    const on = this.stressed ? n >= max * STRESS_OFF : n > max * STRESS_ON;
    if (on === this.stressed) return;
    this.stressed = on;
    this.limits.onStress(on, n);
    // Shorter timeouts apply to the sessions already open too.
    for (const c of this.connections) if (c instanceof StrictConnection) c.rearm();
  }

  override connect(
    socket: Socket,
    socketOptions?: ConstructorParameters<typeof SMTPConnection>[2],
  ): void {
    const connection = new StrictConnection(this, socket, socketOptions);
    connection.owner = this;
    const timer = setTimeout(() => {
      connection.send(421, '4.4.2 Session time limit reached; closing', false);
      connection.close();
    }, this.limits.sessionTimeoutMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      // after smtp-server has taken the connection off its set
      setImmediate(() => this.checkStress());
    });
    this.connections.add(connection);
    this.checkStress();
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) =>
      this._onClientConnect(data),
    );
    connection.init();
  }
}
