/**
 * `posta install-service` refuses, in one sentence and before changing
 * anything, a config folder the service user cannot reach (a folder above it
 * is private, as /root is).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { posta, tempDir } from '../helpers/posta.ts';

test('a config folder under a private folder is refused before anything changes', async () => {
  const home = join(await tempDir('posta-home-'), 'root');
  await mkdir(home, { mode: 0o700 });
  await chmod(home, 0o700);
  const dir = join(home, 'posta');
  const init = await posta(['init', 'example.test', '--dir', dir]);
  assert.equal(init.code, 0, init.stderr);
  const units = await tempDir('posta-unit-');
  const r = await posta(['install-service', '--user', 'nobody', '--unit-dir', units, '--dir', dir]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `posta: The service user nobody cannot read ${home} (the config folder): a folder above it is private (e.g. /root); move it (code in /opt/posta, config in /etc/posta or /srv/posta) or let nobody through with chmod o+x on each folder above it.\n`,
  );
  assert.deepEqual(await readdir(units), [], 'no unit written');
  assert.equal((await stat(join(dir, 'posta.toml'))).uid, 0, 'the folder still belongs to root');
});
