/**
 * A 250 means the message is on disk: the spool commits without waiting for
 * the disk and syncs its WAL off the event loop (src/queue/wal-sync.ts), so
 * the order that makes a 250 survive a power cut is checked where it happens,
 * in the system calls of `posta serve` as strace records them: the commit's
 * write to data/queue.db-wal, then an fdatasync of that file that starts
 * after it and returns (or an fsync), and only then the 250 on the client's socket.
 * (kill -9 cannot tell: the OS keeps written data across it; crash.test.ts
 * covers that.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, type TestServer } from '../helpers/server.ts';
import { RawSmtp } from '../helpers/smtp.ts';
import { posta } from '../helpers/posta.ts';

let s: TestServer;
let trace: string;

before(async () => {
  trace = join('/tmp', `posta-durability-${process.pid}.strace`);
  s = await startServer({
    wrap: [
      'strace',
      ...['-f', '-qq', '-y', '-s', '4096', '-o', trace],
      ...['-e', 'trace=pwrite64,write,writev,fsync,fdatasync', '--'],
    ],
  });
  await s.reload(() =>
    posta(['alias', 'add', 'kept@example.test', 'someone@example.net', '--dir', s.dir]),
  );
});

after(async () => {
  // strace passes no signal on: stop posta, and strace ends with it
  const pid = s.child.pid!;
  const posta = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ');
  const ended = new Promise((resolve) => s.child.once('exit', resolve));
  for (const p of posta.filter(Boolean)) process.kill(Number(p), 'SIGTERM');
  await ended;
  rmSync(trace, { force: true });
});

test('each 250 on port 25 comes after an fdatasync of the WAL that started after its commit', async () => {
  const ids: string[] = [];
  const c = await RawSmtp.connect(s.host, s.ports.smtp);
  try {
    assert.equal((await c.reply()).code, 220);
    assert.equal((await c.cmd('EHLO sender.example')).code, 250);
    for (let i = 0; i < 3; i++) {
      assert.equal((await c.cmd('MAIL FROM:<a@sender.example>')).code, 250);
      assert.equal((await c.cmd('RCPT TO:<kept@example.test>')).code, 250);
      assert.equal((await c.cmd('DATA')).code, 354);
      const r = await c.cmd(`From: a@sender.example\r\nSubject: durable ${i}\r\n\r\nbody\r\n.`);
      assert.equal(r.code, 250, r.raw);
      const id = /queued as (\S+)/.exec(r.raw)?.[1];
      assert.ok(id, r.raw);
      ids.push(id);
    }
  } finally {
    c.close();
  }
  const log = readFileSync(trace, 'utf8').split('\n');
  const wal = /queue\.db-wal>/;
  for (const id of ids) {
    const reply = log.findIndex((l) => l.includes(`"250 2.0.0 Ok: queued as ${id}\\r\\n"`));
    assert.ok(reply > 0, `the 250 for ${id} is in the trace`);
    // the commit: the first write to the WAL of a page with the message's id
    // (the delivery's first attempt, say, may commit before the 250 is sent)
    const commit = log.findIndex(
      (l) => /pwrite64\(\d+<[^>]*queue\.db-wal>/.test(l) && l.includes(id),
    );
    assert.ok(commit >= 0 && commit < reply, `the commit of ${id} wrote to the WAL before its 250`);
    // an fdatasync of the WAL, started after the commit, returned 0 before the reply
    const started = new Map<string, number>();
    let synced = false;
    for (let i = commit + 1; i < reply; i++) {
      const l = log[i]!;
      const pid = /^(\d+)/.exec(l)?.[1] ?? '';
      if (/(fsync|fdatasync)\(\d+</.test(l) && wal.test(l)) {
        if (/\) += 0$/.test(l)) synced = true;
        else if (l.includes('<unfinished ...>')) started.set(pid, i);
      } else if (/<\.\.\. f(data)?sync resumed>\) += 0$/.test(l) && started.has(pid)) {
        synced = true;
      }
    }
    const seen = log
      .slice(commit, reply + 1)
      .map((l) => l.slice(0, 140))
      .join('\n');
    assert.ok(
      synced,
      `an fdatasync of queue.db-wal between the commit and the 250 of ${id}:\n${seen}`,
    );
  }
});
