/**
 * The line length limit of a message (RFC 5322 §2.1.1): each line, header
 * or body, "MUST be no more than 998 characters ... excluding the CRLF". A
 * folded header field is several lines and fine; one physical line over the
 * limit is refused by strict receivers, so posta refuses it before it
 * acknowledges (and signs) the message, rather than bounce it later.
 */
export const MAX_LINE_OCTETS = 998;

/** The first line longer than the limit: its number (from 1) and length without CRLF; null when none. */
export function longLine(data: Buffer): { line: number; length: number } | null {
  let start = 0;
  for (let line = 1; start < data.length; line++) {
    const nl = data.indexOf(10, start);
    const end = nl < 0 ? data.length : nl > start && data[nl - 1] === 13 ? nl - 1 : nl;
    if (end - start > MAX_LINE_OCTETS) return { line, length: end - start };
    if (nl < 0) break;
    start = nl + 1;
  }
  return null;
}

/** What to tell the sender of a message with such a line (SMTP reply text, or a sentence). */
export function longLineText(long: { line: number; length: number }): string {
  return `Line ${long.line} of the message is ${long.length} octets long; the limit is ${MAX_LINE_OCTETS} (RFC 5322 section 2.1.1): wrap it, or encode the part as quoted-printable or base64`;
}
