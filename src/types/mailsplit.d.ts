// The part of mailsplit's API posta uses (the package ships no types).
declare module 'mailsplit' {
  import type { Transform } from 'node:stream';
  export class Headers {
    constructor(headers: Buffer | string);
    get(key: string): string[];
    hasHeader(key: string): boolean;
    /** Removes every field named `key`. */
    remove(key: string): void;
    /** The header again, each field as it was, ending in the empty line. */
    build(): Buffer;
  }

  /** A stream of a message's MIME nodes and their bodies. */
  export class Splitter extends Transform {
    constructor(options?: { ignoreEmbedded?: boolean; maxHeadSize?: number });
  }
}
