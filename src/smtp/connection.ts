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
 * - A whole-session time limit, beside smtp-server's per-command idle timeout.
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

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;

export interface WireLimits {
  maxErrors: number;
  sessionTimeoutMs: number;
}

class StrictConnection extends SMTPConnection {
  private errors = 0;
  limits: WireLimits = { maxErrors: 20, sessionTimeoutMs: 30 * 60_000 };

  override _createParser(): SMTPStream {
    const parser = super._createParser();
    const write = parser._write.bind(parser);
    let last = 0;
    parser._write = (
      chunk: Buffer,
      encoding: BufferEncoding,
      next: (err?: Error | null) => void,
    ) => {
      if (!parser._dataMode && !parser.isClosed && hasBareLineEnding(chunk, last)) {
        parser.isClosed = true;
        this.send(500, '5.5.2 Line endings must be CRLF (RFC 5321 section 2.3.8); closing');
        this.close();
        return next();
      }
      if (chunk.length) last = chunk[chunk.length - 1] ?? 0;
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

/** In command mode: an LF not after CR, or a CR not before LF (a CR at the very end may be split). */
function hasBareLineEnding(chunk: Buffer, prev: number): boolean {
  for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
    if ((i === 0 ? prev : chunk[i - 1]) !== 13) return true;
  }
  for (let i = chunk.indexOf(13); i >= 0 && i < chunk.length - 1; i = chunk.indexOf(13, i + 1)) {
    if (chunk[i + 1] !== 10) return true;
  }
  return false;
}

export class PostaSMTPServer extends SMTPServer {
  private readonly limits: WireLimits;

  constructor(options: SMTPServerOptions, limits: WireLimits) {
    super(options);
    this.limits = limits;
  }

  override connect(
    socket: Socket,
    socketOptions?: ConstructorParameters<typeof SMTPConnection>[2],
  ): void {
    const connection = new StrictConnection(this, socket, socketOptions);
    connection.limits = this.limits;
    const timer = setTimeout(() => {
      connection.send(421, '4.4.2 Session time limit reached; closing', false);
      connection.close();
    }, this.limits.sessionTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: Parameters<SMTPServer['_onClientConnect']>[0]) =>
      this._onClientConnect(data),
    );
    connection.init();
  }
}
