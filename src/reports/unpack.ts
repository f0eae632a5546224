/**
 * A report attachment's bytes to its document: gzip (RFC 1952, with
 * node:zlib), zip (the one .xml or .json file in it, with fflate: node:zlib
 * has no zip reader), or the plain document. RFC 7489 §7.2.1.1 allows gzip
 * and zip for DMARC aggregate reports; RFC 8460 §5.3 gzip for TLS-RPT.
 *
 * Hostile input is bounded: the attachment's size, the document's size
 * (MAX_DOCUMENT), and the ratio of the two (MAX_RATIO, past a floor, so a
 * small report still reads), so a zip or gzip bomb stops inflating at the
 * bound instead of filling the memory. The kind is told by the bytes (gzip
 * and zip magic numbers), not by the content type a sender claims.
 */
import { gunzipSync } from 'node:zlib';
import { Unzip, UnzipInflate, type UnzipFile } from 'fflate';

export const UNPACK_LIMITS = {
  /** The attachment as sent (decoded from base64). */
  attachment: 4 * 1024 * 1024,
  /** The document inflated from it. */
  document: 8 * 1024 * 1024,
  /** Inflated bytes per attachment byte, beyond `floor`. */
  ratio: 100,
  /** A document this small reads whatever the ratio. */
  floor: 1024 * 1024,
};

export type UnpackLimits = typeof UNPACK_LIMITS;

export class UnpackError extends Error {}

export type Packing = 'gzip' | 'zip' | 'plain';

/** What the bytes are; null when neither compressed nor a document that starts like XML or JSON. */
export function packingOf(bytes: Buffer): Packing | null {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'gzip';
  if (bytes.readUInt32LE(0) === 0x04034b50) return 'zip';
  const start = bytes
    .subarray(0, 64)
    .toString('utf8')
    .replace(/^\uFEFF?\s*/, '');
  return start.startsWith('<') || start.startsWith('{') ? 'plain' : null;
}

/** The document in `bytes`; throws UnpackError past a limit or on a broken archive. */
export function unpack(bytes: Buffer, limits: UnpackLimits = UNPACK_LIMITS): Buffer {
  if (bytes.length > limits.attachment) {
    throw new UnpackError(`the attachment is over ${limits.attachment} bytes`);
  }
  const cap = Math.min(limits.document, Math.max(limits.floor, limits.ratio * bytes.length));
  const packing = bytes.length >= 4 ? packingOf(bytes) : null;
  if (packing === 'plain') {
    if (bytes.length > limits.document) throw new UnpackError('the document is too large');
    return bytes;
  }
  if (packing === 'gzip') {
    try {
      // inflating stops at maxOutputLength: a bomb costs at most `cap` bytes
      return gunzipSync(bytes, { maxOutputLength: cap });
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new UnpackError(`the gzip data inflates past ${cap} bytes`);
      }
      throw new UnpackError(`the gzip data is broken (${(err as Error).message})`);
    }
  }
  if (packing === 'zip') return unzipOne(bytes, cap);
  throw new UnpackError('the attachment is neither gzip, zip, XML nor JSON');
}

/**
 * The one document of a zip file, read with fflate's streaming Unzip. Its
 * input goes in SLICE bytes at a time (deflate inflates at most 1032 to 1,
 * so a slice makes at most about a megabyte) and inflating stops once the
 * output passes `cap`: neither the memory nor the time a bomb costs depends
 * on the sizes its headers declare, which a sender may make up.
 */
function unzipOne(bytes: Buffer, cap: number): Buffer {
  const SLICE = 1024;
  let chosen: UnzipFile | undefined;
  let refused: string | undefined;
  const out: Uint8Array[] = [];
  let size = 0;
  let done = false;
  let failed: Error | undefined;
  const unzip = new Unzip((file) => {
    if (chosen || !/\.(xml|json)$/i.test(file.name)) return;
    if (file.compression !== 0 && file.compression !== 8) {
      refused = `${file.name} uses compression method ${file.compression}`;
      return;
    }
    chosen = file;
    file.ondata = (err, chunk, final) => {
      if (err) {
        failed = err;
        return;
      }
      size += chunk.length;
      if (size > cap) {
        failed = new UnpackError(`the zip file inflates past ${cap} bytes`);
        file.terminate();
        return;
      }
      out.push(chunk);
      if (final) done = true;
    };
    file.start();
  });
  unzip.register(UnzipInflate);
  try {
    for (let i = 0; i < bytes.length && !failed && !done; i += SLICE) {
      const end = Math.min(bytes.length, i + SLICE);
      unzip.push(bytes.subarray(i, end), end === bytes.length);
    }
  } catch (err) {
    failed = err as Error;
  }
  if (failed instanceof UnpackError) throw failed;
  if (failed) throw new UnpackError(`the zip file is broken (${failed.message})`);
  if (!chosen) throw new UnpackError(refused ?? 'the zip file holds no .xml or .json file');
  if (!done) throw new UnpackError(`the zip file ends inside ${chosen.name}`);
  return Buffer.concat(out);
}
