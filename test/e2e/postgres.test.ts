/**
 * `posta serve` with its queue on PostgreSQL ([storage] url), as a user runs
 * it: the password in a file beside the config, mail submitted by SMTP
 * (nodemailer) and delivered by MX to an independent receiver (aiosmtpd),
 * the shared suppression list (posta suppress beside a node, and a one-click
 * unsubscribe, curl's POST, to the other node of two), and PostgreSQL itself
 * killed under load (pg_ctl stop -m immediate).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { posta } from '../helpers/posta.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { submit } from '../helpers/smtp.ts';
import { postgresMissing, startPostgres, type Postgres } from '../helpers/postgres.ts';

/** [storage] for `url` (which carries the password): the URL without it, the password in a file. */
async function storageToml(dir: string, url: string, node: string): Promise<string> {
  const u = new URL(url);
  const password = decodeURIComponent(u.password);
  u.password = '';
  await writeFile(join(dir, 'pg-password'), `${password}\n`, { mode: 0o600 });
  return [
    '[storage]',
    `url = "${u.toString()}"`,
    'password_file = "pg-password"',
    `node = "${node}"`,
  ].join('\n');
}

describe('posta on PostgreSQL', { skip: postgresMissing() ?? false }, () => {
  let pg: Postgres;
  let mx: Awaited<ReturnType<typeof startMxFor>>;
  before(async () => {
    pg = await startPostgres();
    mx = await startMxFor('dest.test');
  });
  after(async () => {
    await mx?.stop();
    await pg?.stop();
  });

  test('a URL that holds the password is refused, with where the password goes', async () => {
    const s = await startServer({ dns: mx.dns.endpoint });
    await s.stop();
    const toml = join(s.dir, 'posta.toml');
    await writeFile(toml, `[storage]\nurl = "${pg.url}"\n`, { flag: 'a' });
    const r = await posta(['serve', '--dir', s.dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /password_file or \$POSTA_STORAGE_PASSWORD/);
  });

  let s: TestServer;
  test('submitted mail is queued in PostgreSQL and delivered by MX', async () => {
    const url = await pg.database();
    s = await startServer({ dns: mx.dns.endpoint, extraToml: '' });
    await s.stop();
    await writeFile(join(s.dir, 'posta.toml'), `\n${await storageToml(s.dir, url, 'one')}\n`, {
      flag: 'a',
    });
    await s.restart();
    assert.ok(
      s.logs.some((l) => l.includes('the queue is on PostgreSQL') && !l.includes(pg.url)),
      'it says where the queue is, without the password',
    );
    const id = await submit(s, 'someone@dest.test', 'on postgres');
    const got = await mx.rx.arrival((m) => m.data.includes('Subject: on postgres'), 'the message');
    assert.deepEqual(got.rcptTos, ['someone@dest.test']);
    assert.ok(s.logs.some((l) => l.includes(id) && l.includes('"msg":"delivered"')));
  });

  test('posta suppress acts on the shared list: the running node sends nothing to an address added beside it, and again once removed', async () => {
    assert.ok(s, 'the server of the test before');
    const gone = (verb: string) =>
      posta(['suppress', verb, 'gone@dest.test', '--domain', 'example.test', '--dir', s.dir]);
    const added = await gone('add');
    assert.equal(added.code, 0, added.stderr);
    const listed = await posta(['suppress', 'list', '--json', '--dir', s.dir]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.deepEqual(
      (JSON.parse(listed.stdout) as { address: string; reason: string }[]).map((r) => [
        r.address,
        r.reason,
      ]),
      [['gone@dest.test', 'BOUNCE']],
    );
    const from = s.logs.length;
    const id = await submit(s, 'gone@dest.test', 'to a suppressed address');
    const bounced = await s.logged(from, 'is on the suppression list of example.test');
    assert.ok(
      bounced.some((l) => l.includes(id)),
      'the recipient failed at once as suppressed',
    );
    const del = await gone('del');
    assert.equal(del.code, 0, del.stderr);
    await submit(s, 'gone@dest.test', 'after the removal');
    await mx.rx.arrival((m) => m.data.includes('Subject: after the removal'), 'the message');
    assert.ok(
      !(await mx.rx.messages()).some((m) => m.data.includes('Subject: to a suppressed address')),
      'the suppressed one never reached the MX',
    );
    const again = await gone('del');
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /gone@dest\.test is not on the suppression list of example\.test/);
  });

  test('posta queue shows and acts on the shared queue: list, show with its attempts, hold, release, flush, delete', async () => {
    assert.ok(s, 'the server of the test before');
    const from = s.logs.length;
    const id = await submit(s, 'always-tempfail@dest.test', 'stuck on postgres');
    await s.logged(from, `"qid":"${id}"`);
    await s.logged(from, '"msg":"deferred"');
    const q = (...args: string[]) => posta(['queue', ...args, '--dir', s.dir]);
    const list = await q('list', '--json');
    assert.equal(list.code, 0, list.stderr);
    const mine = (
      JSON.parse(list.stdout) as {
        id: string;
        recipients: { address: string; state: string; lastReply: string }[];
      }[]
    ).find((e) => e.id === id);
    assert.equal(mine?.recipients[0]?.address, 'always-tempfail@dest.test');
    assert.equal(mine?.recipients[0]?.state, 'deferred');
    assert.match(mine?.recipients[0]?.lastReply ?? '', /^451 4\.3\.0/);
    // posta status asks the running node, which counts the shared queue
    const status = await posta(['status', '--json', '--dir', s.dir]);
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout) as {
      queue: { messages: number; deferred: number };
      lastHour: { transient: number };
    };
    assert.ok(st.queue.messages >= 1 && st.queue.deferred >= 1, status.stdout);
    assert.ok(st.lastHour.transient >= 1, status.stdout);
    const shown = await q('show', id);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /Subject: {2}stuck on postgres/);
    assert.match(shown.stdout, /<always-tempfail@dest\.test> {2}transient via mx\.dest\.test/);
    const held = await q('hold', id);
    assert.equal(held.code, 0, held.stderr);
    assert.match((await q('list')).stdout, /<always-tempfail@dest\.test> {2}held/);
    assert.match((await q('release', id)).stdout, /Released .*: 1 recipient will be tried now/);
    assert.equal((await q('flush')).code, 0);
    assert.equal((await q('delete', id)).stdout, `Deleted ${id}.\n`);
    assert.ok(!(await q('list')).stdout.includes(id), 'gone from the queue');
    const again = await q('delete', id);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /There is no message .* in the queue/);
  });

  test('a one-click unsubscribe link given out by one node works on the other: the address is suppressed for both', async () => {
    const url = await pg.database();
    const two: TestServer[] = [];
    try {
      for (const node of ['a', 'b']) {
        const n = await startServer({ dns: mx.dns.endpoint, https: true });
        two.push(n);
        await n.stop();
        await writeFile(join(n.dir, 'posta.toml'), `\n${await storageToml(n.dir, url, node)}\n`, {
          flag: 'a',
        });
        await n.restart();
      }
      const [a, b] = two as [TestServer, TestServer];
      const rcpt = 'reader@dest.test';
      await submit(a, rcpt, 'the newsletter', 'hi', { 'X-Posta-Unsubscribe': 'one-click' });
      const m = await mx.rx.arrival(
        (x) => x.data.includes('Subject: the newsletter'),
        'the list mail',
      );
      const value =
        /^List-Unsubscribe:[ \t]*((?:.*)(?:\r\n[ \t].*)*)/im.exec(m.data.toString('latin1'))?.[1] ??
        '';
      const link = /<(https:[^>]+)>/.exec(value)?.[1];
      assert.ok(link, `List-Unsubscribe: ${value}`);
      // curl, as the receiver's one-click POST, to the other node
      const post = await new Promise<string>((resolve) =>
        execFile(
          'curl',
          [
            ...['-sS', '--resolve', `mail.example.test:443:${b.host}`, '--cacert', b.certFile],
            ...['-o', '/dev/null', '-w', '%{http_code}', '-d', 'List-Unsubscribe=One-Click', link],
          ],
          { timeout: 30_000 },
          (err, stdout, stderr) => resolve(err ? `${stdout}${stderr}` : stdout),
        ),
      );
      assert.equal(post.trim(), '200');
      const listed = await posta(['suppress', 'list', '--json', '--dir', a.dir]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(
        (JSON.parse(listed.stdout) as { address: string; reason: string }[]).find(
          (r) => r.address === rcpt,
        )?.reason,
        'UNSUBSCRIBE',
      );
      const from = a.logs.length;
      const id = await submit(a, rcpt, 'the next newsletter');
      const bounced = await a.logged(from, 'is on the suppression list of example.test');
      assert.ok(
        bounced.some((l) => l.includes(id)),
        'the node that sent the link sends no more',
      );
    } finally {
      for (const n of two) await n.stop();
    }
  });

  test('PostgreSQL killed under load: 4xx while it is down, nothing acknowledged lost, back by itself', async (t) => {
    assert.ok(s, 'the server of the test before');
    const acknowledged: string[] = [];
    const refused: string[] = [];
    /** Anything but a 250 or a 4xx. */
    const wrong: string[] = [];
    let restarted = false;
    let n = 0;
    // four sessions at a time, one submission after another, over the crash and the restart
    const session = async () => {
      while (wrong.length === 0) {
        const subject = `load ${++n}`;
        try {
          await submit(s, `load${n}@dest.test`, subject);
          acknowledged.push(subject);
          if (restarted) return; // a 250 after the restart: posta is back by itself
        } catch (err) {
          const code = (err as { responseCode?: number }).responseCode;
          if (code === undefined || code < 400 || code >= 500) {
            wrong.push(`${subject}: ${code ?? ''} ${(err as Error).message}`);
            return;
          }
          refused.push(subject);
        }
      }
    };
    const load = Promise.all([session(), session(), session(), session()]);
    while (acknowledged.length < 40 && !wrong.length) await sleep(20);
    await pg.crash();
    while (refused.length < 8 && !wrong.length) await sleep(50);
    // posta status says the queue cannot be read, in one sentence
    const status = await posta(['status', '--dir', s.dir]);
    assert.notEqual(status.code, 0);
    assert.match(
      status.stderr,
      /^posta: The running server could not give its status: the server answered 503: cannot read the queue: .+\.\n$/,
    );
    await pg.start();
    restarted = true;
    await load;
    assert.deepEqual(wrong, [], 'while the database is away posta answers 4xx');
    const wanted = new Set(acknowledged);
    const arrived = async () =>
      new Set(
        (await mx.rx.messages())
          .map((m) => /^Subject: (load \d+)\r$/m.exec(m.data.toString())?.[1])
          .filter((x) => x !== undefined),
      );
    let got = await arrived();
    for (let i = 0; i < 1200 && [...wanted].some((x) => !got.has(x)); i++) {
      await sleep(100);
      got = await arrived();
    }
    const lost = [...wanted].filter((x) => !got.has(x));
    assert.deepEqual(lost, [], 'every acknowledged message arrived');
    t.diagnostic(
      `${acknowledged.length} acknowledged, ${refused.length} refused with 4xx while down`,
    );
  });

  after(() => s?.stop());
});
