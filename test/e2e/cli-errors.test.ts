/**
 * Failures of the file system as one sentence, never a stack trace or a hang:
 * init under a folder this user may not write or under /proc, the queue of a
 * server run by another user, a lock file in a folder of another user (main's
 * catch-all), and a --port-base that is not a number (a usage error that
 * leaves no temporary folder behind).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { POSTA, initFolder, posta, tempDir, type Run } from '../helpers/posta.ts';
import { openQueueDb } from '../../src/queue/spool.ts';

/** One line on stderr, "posta: ..." with no stack and no "unexpected error". */
function oneSentence(r: Run, want: RegExp) {
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^posta: [^\n]+\n$/);
  assert.doesNotMatch(r.stderr, /unexpected error|\n\s+at /);
  assert.match(r.stderr, want);
}

/** A folder nobody can reach, with `sub` inside it that it may not write. */
async function readOnlyFolder(): Promise<string> {
  const root = await tempDir();
  await chmod(root, 0o755);
  const ro = join(root, 'ro');
  await mkdir(ro, { mode: 0o555 });
  return ro;
}

test('init under a folder this user may not write names it and its owner', async () => {
  const dir = join(await readOnlyFolder(), 'posta');
  const r = await posta(['init', 'example.test', '--dir', dir], { asNobody: true });
  oneSentence(
    r,
    /Cannot create the config folder .*ro\/posta: permission denied \(.*ro belongs to root\); run the command as root, or choose another --dir\./,
  );
});

test('init --dir /proc/x fails at once instead of spinning', async () => {
  // Killed after 20 s: the old code spun at 100% CPU for ever.
  const r = await new Promise<Run>((resolve) => {
    execFile(
      POSTA,
      ['init', 'example.test', '--dir', '/proc/x'],
      { timeout: 20_000, env: { ...process.env, POSTA_DIR: '' } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr }),
    );
  });
  oneSentence(r, /Cannot create the config folder \/proc\/x: .*does not exist/);
});

test("the queue of another user's server is an error naming its owner, not an empty queue", async () => {
  const { dir } = await initFolder();
  await chmod(join(dir, '..'), 0o755);
  openQueueDb(join(dir, 'data')).close();
  await chmod(join(dir, 'data'), 0o700);
  const hidden = await posta(['queue', 'list', '--dir', dir], { asNobody: true });
  oneSentence(hidden, /Cannot use the queue .*queue\.db: permission denied .*belongs to root/);
  await chmod(join(dir, 'data'), 0o755);
  const unreadable = await posta(['queue', 'list', '--dir', dir], { asNobody: true });
  oneSentence(
    unreadable,
    /Cannot use the queue .*queue\.db: permission denied \(it belongs to root\)/,
  );
});

test('an fs error no command explains is one sentence too (a lock in a folder of root)', async () => {
  const { dir } = await initFolder();
  await chmod(join(dir, '..'), 0o755);
  const r = await posta(
    ['user', 'add', 'x@example.test', '--password', 'long enough', '--dir', dir],
    {
      asNobody: true,
    },
  );
  oneSentence(
    r,
    /Cannot open .*users\.lock: permission denied \(.*example\.test belongs to root\)/,
  );
});

test('dev --port-base abc is a usage error and leaves no temporary folder', async () => {
  const tmp = await tempDir();
  for (const bad of ['abc', '-5', '60000', '1.5']) {
    const r = await posta(['dev', `--port-base=${bad}`], { env: { TMPDIR: tmp } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^posta: --port-base "[^"]+" is not a whole number from 1 to 59510; [^\n]+\n$/,
    );
  }
  assert.deepEqual(await readdir(tmp), []);
});
