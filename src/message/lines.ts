/**
 * The line length limit of a message (RFC 5322 §2.1.1): each line, header
 * or body, "MUST be no more than 998 characters ... excluding the CRLF". A
 * folded header field is several lines and fine; one physical line over the
 * limit is refused by strict receivers, so posta refuses it before it
 * acknowledges (and signs) the message, rather than bounce it later.
 *
 * And line endings (RFC 5321 §2.3.8): only CRLF ends a line, in commands
 * and in DATA; a bare LF or CR is what SMTP smuggling hides behind.
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

/**
 * longLine() over a message that arrives in chunks: feed() each chunk, then
 * result(). It counts a line's octets before its CRLF; a bare LF is refused
 * on its own (smtp/data.ts), so every LF is taken to end a CRLF.
 */
export class LineLengths {
  private line = 1;
  /** Octets of the current line so far, its CR included. */
  private current = 0;
  private found: { line: number; length: number } | null = null;

  feed(chunk: Buffer): void {
    if (this.found) return;
    let start = 0;
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
      const length = this.current + (i - start) - 1;
      if (length > MAX_LINE_OCTETS) {
        this.found = { line: this.line, length };
        return;
      }
      this.line++;
      this.current = 0;
      start = i + 1;
    }
    this.current += chunk.length - start;
  }

  /** The first line over the limit, as longLine() has it; null when none. */
  result(): { line: number; length: number } | null {
    if (this.found) return this.found;
    return this.current > MAX_LINE_OCTETS ? { line: this.line, length: this.current } : null;
  }
}

/**
 * The first kind of bare line ending in `chunk` ('LF': an LF not after CR,
 * `prev` being the byte before the chunk; 'CR': a CR not before LF, a CR at
 * the very end left to the next chunk); null when there is none.
 */
export function bareLineEnding(chunk: Buffer, prev: number): 'LF' | 'CR' | null {
  for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) {
    if ((i === 0 ? prev : chunk[i - 1]) !== 13) return 'LF';
  }
  for (let i = chunk.indexOf(13); i >= 0 && i < chunk.length - 1; i = chunk.indexOf(13, i + 1)) {
    if (chunk[i + 1] !== 10) return 'CR';
  }
  return null;
}
