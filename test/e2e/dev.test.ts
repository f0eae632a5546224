/** `npm start` / `posta dev`: the sandbox accepts, signs and captures mail, and stops cleanly. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { POSTA, tempDir } from '../helpers/posta.ts';

const run = promisify(execFile);

test('posta dev prints an account, accepts mail from swaks and captures it signed', async () => {
  const root = join(await tempDir(), 'sandbox');
  // Ports N+25 … N+6025 stay below Linux's ephemeral range (32768 up), where
  // other tests' client sockets on 127.0.0.1 could hold one.
  const base = 10000 + Math.floor(Math.random() * 16000);
  const child = spawn(POSTA, ['dev', '--sandbox', root, '--port-base', String(base)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  try {
    for (let i = 0; i < 200 && (stdout.match(/"listening"/g) ?? []).length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const password = /password (\S+)/.exec(stderr)?.[1];
    assert.ok(password, `the sandbox prints the password: ${stderr}`);
    // No '-' or '_': swaks would take a leading '-' for an option.
    assert.match(password, /^[A-Za-z0-9]{16}$/);
    assert.match(stderr, /captured mail\s+(\S+)\/\*\.eml/);
    const r = await run('swaks', [
      '--server',
      `127.0.0.1:${base + 587}`,
      '--tls',
      '--auth-user',
      'dev@example.test',
      '--auth-password',
      password,
      '--from',
      'dev@example.test',
      '--to',
      'someone@example.org',
    ]);
    assert.match(r.stdout, /250 2\.0\.0 Ok: queued as (\w+)/);
    const captured = join(root, 'posta/data/captured');
    // The sandbox delivers through the queue, so the capture follows the 250 shortly.
    let files: string[] = [];
    for (let i = 0; i < 100 && files.length === 0; i++) {
      files = (await readdir(captured).catch(() => [])).filter((f) => f.endsWith('.eml'));
      if (files.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(files.length, 1);
    const eml = await readFile(join(captured, files[0] ?? ''), 'utf8');
    assert.equal((eml.match(/^DKIM-Signature: /gm) ?? []).length, 2);
    assert.match(eml, /^Received: from .*\sby mail\.example\.test \(posta\) with ESMTPSA/ms);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, 'Ctrl-C stops the sandbox cleanly');
});
