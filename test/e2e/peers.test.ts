/**
 * test/peers/ensure.sh, the check `npm test` and CI run first: on this machine
 * every peer is there; where one is missing or lacks a capability (swaks
 * without Net::SSLeay, as `--no-install-recommends` leaves it) it says so in one
 * line naming the Debian package, and exits 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT, tempDir } from '../helpers/posta.ts';

const ENSURE = join(ROOT, 'test/peers/ensure.sh');

function ensure(path = process.env.PATH ?? '') {
  return new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile('bash', [ENSURE, '--check'], { env: { PATH: path } }, (err, stdout) =>
      resolve({ code: err ? Number(err.code) : 0, stdout }),
    );
  });
}

test('every test peer and capability is present here', async () => {
  const r = await ensure();
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /^test peers: all \d+ capabilities present$/m);
});

test('swaks without TLS is named in one line with its package', async () => {
  // A PATH whose swaks answers as Debian's does without Net::SSLeay; every
  // other program is the machine's own.
  const bin = await tempDir('posta-peers-');
  await writeFile(
    join(bin, 'swaks'),
    `#!/bin/sh\necho '=== IPv6 supported'\necho '*** TLS not available: requires Net::SSLeay'\n`,
  );
  await chmod(join(bin, 'swaks'), 0o755);
  const r = await ensure(`${bin}:${process.env.PATH ?? ''}`);
  assert.equal(r.code, 1);
  assert.deepEqual(
    r.stdout.trim().split('\n'),
    [
      'test peers: missing swaks TLS (Net::SSLeay) (Debian package libnet-ssleay-perl)',
      'test peers: as root, run: apt-get install --no-install-recommends libnet-ssleay-perl',
    ],
    r.stdout,
  );
});

test('with none of the peers on PATH, each is named', async () => {
  const bin = await tempDir('posta-peers-');
  for (const tool of ['bash', 'grep', 'cut', 'sort', 'tr', 'id']) {
    await symlink(`/usr/bin/${tool}`, join(bin, tool));
  }
  const r = await ensure(bin);
  assert.equal(r.code, 1);
  for (const pkg of ['swaks', 'libnet-ssleay-perl', 'pebble', 'bind9-utils', 'iproute2']) {
    assert.match(r.stdout, new RegExp(`^test peers: missing .*\\(Debian package ${pkg}\\)$`, 'm'));
  }
  assert.match(r.stdout, /^test peers: as root, run: apt-get install .*libnet-ssleay-perl/m);
});
