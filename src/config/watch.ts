/**
 * posta.toml is read once, at start-up: the running server watches it only
 * to say so. A changed file is checked as at start-up; a broken one is
 * logged with the validation error (the next start would fail), a valid one
 * with "restart posta to apply it". Each version of the file is reported
 * once; going back to the text in use says nothing.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileStamp } from '../fsutil/stamp.ts';
import type { Logger } from '../log/log.ts';
import { CONFIG_FILE, loadConfig } from './load.ts';

/** Check posta.toml every `ms`; resolves to the function that stops watching. */
export async function watchConfigFile(dir: string, log: Logger, ms = 2000): Promise<() => void> {
  const file = join(dir, CONFIG_FILE);
  // The stamp before the text, so a write in between is seen next time.
  const stampNow = () => fileStamp(file).catch(() => '-');
  const readText = () => readFile(file, 'utf8').catch(() => null);
  let seen = await stampNow();
  const inUse = await readText();
  let busy = false;
  const check = async () => {
    const stamp = await stampNow();
    if (stamp === seen) return; // unchanged: the text is not read
    seen = stamp;
    const text = await readText();
    if (text !== null && text === inUse) return;
    try {
      await loadConfig(dir);
      log.warn({ file }, 'posta.toml changed; restart posta to apply it');
    } catch (err) {
      log.error(
        { file, err: (err as Error).message },
        'posta.toml changed and is broken: posta keeps its settings, but would not start with this file',
      );
    }
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    check()
      .catch((err: Error) => log.error({ file, err: err.message }, 'cannot check posta.toml'))
      .finally(() => (busy = false));
  }, ms);
  timer.unref();
  return () => clearInterval(timer);
}
