import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.ts';

const modeOf = async (f: string) => ((await stat(f)).mode & 0o777).toString(8);

for (const [name, before, asked, after] of [
  ['a new file gets the mode asked for', null, 0o600, '600'],
  ['a replaced file keeps a tighter mode', 0o600, 0o644, '600'],
  ['a replaced file is never more open than asked', 0o644, 0o600, '600'],
  ['a replaced file keeps its mode within what is asked', 0o640, 0o644, '640'],
] as const) {
  test(`writeFileAtomic: ${name}`, async () => {
    const file = join(await mkdtemp(join(tmpdir(), 'posta-atomic-')), 'f');
    if (before !== null) {
      await writeFile(file, 'old');
      await chmod(file, before);
    }
    await writeFileAtomic(file, 'new', asked);
    assert.equal(await readFile(file, 'utf8'), 'new');
    assert.equal(await modeOf(file), after);
  });
}
