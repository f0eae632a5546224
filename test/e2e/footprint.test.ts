/**
 * Memory of a real `posta serve` (issue 13): a burst of logins and signed
 * submissions must not take hundreds of MiB. Measured as the process's peak
 * resident size (VmHWM in /proc/PID/status), an upper bound, never a time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp, plain } from '../helpers/smtp.ts';

async function peakMiB(server: TestServer): Promise<number> {
  const status = await readFile(`/proc/${server.child.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

/** `n` sessions at once: STARTTLS, AUTH, one signed message each. */
async function burst(server: TestServer, n: number, user: string, password: string) {
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const c = await RawSmtp.connect(server.host, server.ports.submission);
      await c.reply();
      await c.cmd('EHLO burst.test');
      assert.equal((await c.cmd('STARTTLS')).code, 220);
      await c.upgrade();
      await c.cmd('EHLO burst.test');
      assert.equal((await c.cmd(`AUTH PLAIN ${plain(user, password)}`, 30_000)).code, 235);
      assert.equal((await c.cmd(`MAIL FROM:<${user}>`)).code, 250);
      assert.equal((await c.cmd('RCPT TO:<r@remote.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      const body = `From: <${user}>\r\nSubject: ${i}\r\n\r\n${'y'.repeat(78)}\r\n` + '.\r\n';
      assert.equal((await c.cmd(body.slice(0, -2), 30_000)).code, 250);
      c.write('QUIT\r\n');
    }),
  );
}

test('20 sessions logging in at once stay under 300 MiB resident', async () => {
  const server = await startServer();
  try {
    await burst(server, 20, server.user, server.password);
    const peak = await peakMiB(server);
    assert.ok(peak < 300, `peak resident ${peak.toFixed(0)} MiB`);
  } finally {
    await server.stop();
  }
});
