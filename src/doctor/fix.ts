/**
 * What `posta doctor --fix` changes: posta.toml's `[delivery] ip_family`, set
 * to "ipv4-only" when IPv6 lacks reverse DNS and IPv4 has it. The file is
 * edited as text so that its comments and layout stay as the user wrote
 * them: an `ip_family = ...` line inside [delivery] is replaced, or the key is
 * added under the [delivery] header, or a [delivery] section is appended. The
 * result must still load; it is written atomically (write, fsync, rename).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { CONFIG_FILE, loadConfig, parseConfigText, type IpFamily } from '../config/load.ts';
import { PostaError } from '../errors.ts';

/** A TOML table header line: `[name]` or `[[name]]`, with an optional comment. */
const HEADER = /^\s*\[\[?\s*([A-Za-z0-9_.\-" ]+?)\s*\]\]?\s*(#.*)?$/;

/** posta.toml text with `[delivery] ip_family = "VALUE"` (pure). */
export function setIpFamily(text: string, value: IpFamily): string {
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(/\r?\n/);
  const line = `ip_family = "${value}"`;
  const start = lines.findIndex((l) => HEADER.exec(l)?.[1] === 'delivery');
  if (start < 0) {
    const body = text.length && !text.endsWith('\n') ? `${text}${eol}` : text;
    return `${body}${body.trim() ? eol : ''}[delivery]${eol}${line}${eol}`;
  }
  let end = lines.findIndex((l, i) => i > start && HEADER.test(l));
  if (end < 0) end = lines.length;
  const existing = lines.findIndex((l, i) => i > start && i < end && /^\s*ip_family\s*=/.test(l));
  if (existing >= 0) lines[existing] = line;
  else lines.splice(start + 1, 0, line);
  return lines.join(eol);
}

/**
 * Set ip_family in DIR/posta.toml, then load the folder again to be sure it
 * still works; the old text comes back if it does not.
 */
export async function writeIpFamily(dir: string, value: IpFamily): Promise<void> {
  const file = join(dir, CONFIG_FILE);
  const before = await readFile(file, 'utf8');
  const after = setIpFamily(before, value);
  if (after === before) return;
  const mode = (await stat(file)).mode & 0o777;
  const failed = (err: unknown) =>
    new PostaError(
      `posta doctor --fix could not set [delivery] ip_family = "${value}" in ${file} (${(err as Error).message}); set it by hand.`,
    );
  try {
    parseConfigText(file, after);
  } catch (err) {
    throw failed(err);
  }
  await writeFileAtomic(file, after, mode);
  try {
    await loadConfig(dir);
  } catch (err) {
    await writeFileAtomic(file, before, mode);
    throw failed(err);
  }
}
