/**
 * SMTP replies: one error type carrying the reply code (RFC 5321 §4.2) and the
 * enhanced status code (RFC 3463), and the named replies posta gives. The
 * message text starts with the enhanced code, and server.ts tells smtp-server
 * not to add its default one in front.
 */
export class SmtpReply extends Error {
  readonly responseCode: number;
  readonly enhanced: string;
  constructor(code: number, enhanced: string, text: string) {
    super(`${enhanced} ${text}`);
    this.responseCode = code;
    this.enhanced = enhanced;
  }
}

const r = (code: number, enhanced: string) => (text: string) => new SmtpReply(code, enhanced, text);

export const C421TooManyErrors = r(421, '4.7.0');
export const C421Busy = r(421, '4.3.2');
export const C421Timeout = r(421, '4.4.2');
export const C451LocalError = r(451, '4.3.0');
export const C451QuotaExceeded = r(451, '4.7.1');
export const C452StorageFull = r(452, '4.3.1');
export const C452Busy = r(452, '4.3.1');
export const C452TooManyRecipients = r(452, '4.5.3');
export const C454AuthThrottled = r(454, '4.7.0');
export const C500BareLineEnding = r(500, '5.5.2');
export const C530AuthRequired = r(530, '5.7.0');
export const C535AuthFailed = r(535, '5.7.8');
export const C550NoSuchUser = r(550, '5.1.1');
export const C550BadSrs = r(550, '5.7.1');
export const C550AliasLoop = r(550, '5.4.6');
export const C554Listed = r(554, '5.7.1');
export const C550NotLocal = r(550, '5.7.1');
export const C550RoutingRefused = r(550, '5.7.1');
export const C552TooBig = r(552, '5.3.4');
export const C553SenderNotAllowed = r(553, '5.7.1');
export const C550FromNotAllowed = r(550, '5.7.1');
export const C550BadHeader = r(550, '5.6.0');
export const C550LineTooLong = r(550, '5.6.0');
export const C554BareLineEnding = r(554, '5.6.0');
