/**
 * The receiver every server delivers to: Postfix's smtp-sink on ADDRESS:25
 * (no STARTTLS, nothing stored), counting messages and sessions with -c.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { waitForPort } from './load.ts';
import { PEERS } from './servers.ts';

export interface Sink {
  /** Messages received so far. */
  count(): number;
  /** SMTP sessions seen so far. */
  sessions(): number;
  stop(): void;
}

export async function startSink(address: string): Promise<Sink> {
  const root = join(PEERS, 'postfix');
  let count = 0;
  let sessions = 0;
  // -c: running counters on stdout, "sess=N quit=N mesg=N\r"; as root it must drop privileges
  const child = spawn(
    join(root, 'usr/sbin/smtp-sink'),
    ['-c', '-u', 'nobody', `${address}:25`, '1024'],
    {
      env: { ...process.env, LD_LIBRARY_PATH: join(root, 'usr/lib/postfix') },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    const parts = (out + d.toString()).split('\r');
    out = parts.pop() ?? '';
    const last = parts.findLast((p) => /sess=\d+ .*mesg=\d+/.test(p));
    const m = last && /sess=(\d+) .*mesg=(\d+)/.exec(last);
    if (m) {
      sessions = Number(m[1]);
      count = Number(m[2]);
    }
  });
  await waitForPort(address, 25, () => child.exitCode !== null).catch((err: Error) => {
    child.kill();
    throw new Error(`smtp-sink did not start: ${err.message} ${stderr}`);
  });
  return { count: () => count, sessions: () => sessions, stop: () => child.kill('SIGTERM') };
}
