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
  const read = async () => ({
    stamp: await fileStamp(file).catch(() => '-'), // before the text: a later write is seen
    text: await readFile(file, 'utf8').catch(() => null),
  });
  const inUse = await read();
  let seen = inUse.stamp;
  let busy = false;
  const check = async () => {
    const now = await read();
    if (now.stamp === seen) return;
    seen = now.stamp;
    if (now.text !== null && now.text === inUse.text) return;
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
