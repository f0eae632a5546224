/**
 * Three `posta serve` nodes on one PostgreSQL queue, under a submission load,
 * while nodes are killed (kill -9) and started again, twenty times, and one
 * is frozen (SIGSTOP) for three leases halfway: every message a node
 * acknowledged with 250 arrives at the receiving MX (duplicates are counted
 * and printed: at-least-once allows them), and the MX never has more than the
 * destination's `connections` open at once, over the whole cluster.
 *
 * The receiver (aiosmtpd) is slow on purpose (a delay before its reply to
 * DATA), so that the three nodes compete for the two connection slots.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type ReceivedConnection } from '../helpers/receiver.ts';
import { randomLoopback } from '../helpers/net.ts';
import { postgresMissing, startPostgres, type Postgres } from '../helpers/postgres.ts';

const NODES = ['n1', 'n2', 'n3'];
const LEASE_S = 4;
const CONNECTIONS = 2;
const KILLS = 20;
/** How many submitters run at once, each one message after the other. */
const SUBMITTERS = 4;
const DATA_DELAY_MS = 50;
/** Each submitter's pause between messages: the load stays under what two slow connections carry. */
const PAUSE_MS = 250;
/** How long the delivery of what was acknowledged may take after the load ends. */
const DRAIN_MS = 180_000;

/** The config of node `name` at `host`, on the database at `url` (which holds no password). */
function clusterToml(url: string, name: string, host: string): string {
  return [
    '[storage]',
    `url = "${url}"`,
    `node = "${name}"`,
    `lease = ${LEASE_S}`,
    '[delivery]',
    // the MX tells the nodes apart by their address
    `source_ipv4 = "${host}"`,
    // a transient failure is retried soon, within the wait at the end
    'first_retry = 2',
    'max_retry = 4',
    '[delivery.destinations."dest.test"]',
    `connections = ${CONNECTIONS}`,
  ].join('\n');
}

function messageIdOf(data: Buffer): string | null {
  const head = data.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return /^Message-ID:\s*(<[^>]+>)/im.exec(head)?.[1] ?? null;
}

describe(
  'a cluster of three nodes on one PostgreSQL queue',
  { skip: postgresMissing() ?? false },
  () => {
    let pg: Postgres;
    let mx: Awaited<ReturnType<typeof startMxFor>>;
    const nodes: TestServer[] = [];
    before(async () => {
      pg = await startPostgres();
      mx = await startMxFor('dest.test', { dataDelayMs: DATA_DELAY_MS });
    });
    after(async () => {
      for (const s of nodes) {
        s.child.kill('SIGCONT');
        await s.stop().catch(() => {});
      }
      await mx?.stop();
      await pg?.stop();
    });

    test(
      'kill -9, restarts and a freeze lose no acknowledged mail, and the MX never sees more than its connections',
      { timeout: 400_000 },
      async (t) => {
        const u = new URL(await pg.database());
        const password = decodeURIComponent(u.password);
        u.password = '';
        const env = { POSTA_STORAGE_PASSWORD: password };
        for (const name of NODES) {
          const host = randomLoopback();
          nodes.push(
            await startServer({
              host,
              dns: mx.dns.endpoint,
              env,
              extraToml: clusterToml(u.toString(), name, host),
            }),
          );
        }
        const up = new Set(nodes);
        const started = Date.now();

        // the load: each submitter sends one message after the other, to the
        // next node that is up; a failed one is sent again, to another node,
        // under a new Message-ID (only 250s count)
        const acked = new Set<string>();
        let failures = 0;
        let sent = 0;
        let loading = true;
        const submitter = async (w: number) => {
          for (let i = 0; loading; i++) {
            const candidates = [...up];
            const s = candidates[(w + i) % candidates.length];
            if (!s) {
              await sleep(50);
              continue;
            }
            const id = `<w${w}.m${i}@cluster.test>`;
            const transport = nodemailer.createTransport({
              host: s.host,
              port: s.ports.submission,
              auth: { user: s.user, pass: s.password },
              tls: { rejectUnauthorized: false },
              connectionTimeout: 2000,
              greetingTimeout: 2000,
              socketTimeout: 3000,
            });
            try {
              await transport.sendMail({
                from: s.user,
                to: `rcpt${(w * 7 + i) % 50}@dest.test`,
                subject: `cluster ${id}`,
                text: 'Hello from the cluster.\r\n',
                messageId: id,
              });
              acked.add(id);
            } catch {
              failures++;
            } finally {
              sent++;
              transport.close();
            }
            await sleep(PAUSE_MS);
          }
        };
        const load = Promise.all(Array.from({ length: SUBMITTERS }, (_, w) => submitter(w)));

        /** The node frozen halfway, and when. */
        const froze = { host: '', from: 0 };
        try {
          // kill -9 and start again, a node at a time; halfway, one node is
          // frozen for three leases instead (while the others stay up, so that
          // they have been heard for a lease and may take its work back)
          for (let k = 0; k < KILLS; k++) {
            await sleep(1000 + Math.random() * 2000);
            const s = nodes[Math.floor(Math.random() * nodes.length)] as TestServer;
            if (k === KILLS / 2) {
              froze.host = s.host;
              froze.from = Date.now();
              up.delete(s);
              t.diagnostic(`SIGSTOP ${s.host}`);
              s.child.kill('SIGSTOP');
              await sleep(3 * LEASE_S * 1000);
              s.child.kill('SIGCONT');
              up.add(s);
              continue;
            }
            up.delete(s);
            await s.stop('SIGKILL');
            await sleep(Math.random() * 1000);
            await s.restart();
            up.add(s);
          }
        } finally {
          // the submitters stop, also when a restart failed
          loading = false;
          await load;
        }
        t.diagnostic(`${acked.size} acknowledged of ${sent} tried (${failures} failed)`);
        assert.ok(acked.size > 0, 'some mail was acknowledged');

        // every acknowledged message arrives, some maybe twice; each file the
        // MX wrote is read once
        const counts = new Map<string, number>();
        const read = new Set<string>();
        const arrivals = async () => {
          for (const f of await readdir(mx.rx.dir)) {
            if (!/^\d+\.eml$/.test(f) || read.has(f)) continue;
            // N.eml is complete once N.json exists (the receiver renames it last)
            if (!existsSync(join(mx.rx.dir, f.replace('.eml', '.json')))) continue;
            read.add(f);
            const id = messageIdOf(await readFile(join(mx.rx.dir, f)));
            if (id) counts.set(id, (counts.get(id) ?? 0) + 1);
          }
        };
        const missing = () => [...acked].filter((id) => !counts.has(id));
        const deadline = Date.now() + DRAIN_MS;
        for (let last = 0; ;) {
          await arrivals();
          if (!missing().length || Date.now() > deadline) break;
          if (Date.now() - last > 10_000) {
            last = Date.now();
            t.diagnostic(`${counts.size} of ${acked.size} arrived`);
          }
          await sleep(200);
        }
        const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
        // how many were open as each was accepted; but a frozen process cannot
        // close what it had open: its connections from before the SIGSTOP
        // stay open at the MX while the others take their slots back
        const connections = await mx.rx.connections();
        const closed = await mx.rx.closed();
        const stuck = (c: ReceivedConnection) =>
          c.peer === froze.host &&
          c.time < froze.from &&
          (closed.get(c.connection) ?? Infinity) > froze.from;
        let most = 0;
        let worst = '';
        for (const c of connections) {
          const open = connections.filter(
            (o) => o.time <= c.time && (closed.get(o.connection) ?? Infinity) > c.time && !stuck(o),
          );
          if (open.length <= most) continue;
          most = open.length;
          const at = (ms: number | undefined) =>
            ms === undefined ? '-' : ((ms - started) / 1000).toFixed(2);
          worst = open
            .map((o) => `${o.peer} ${at(o.time)}..${at(closed.get(o.connection))}`)
            .join(', ');
        }
        const peers = new Set(connections.map((c) => c.peer));
        const maybeSent = nodes
          .flatMap((s) => s.logs)
          .filter((l) => l.includes('took back the claimed mail')).length;
        const report =
          `cluster: ${acked.size} acknowledged, ${counts.size} distinct arrived, ` +
          `${duplicates} duplicates, ${connections.length} connections to the MX from ${peers.size} nodes, ` +
          `at most ${most} at once, ${maybeSent} reaps`;
        console.log(report);
        t.diagnostic(report);
        assert.deepEqual(
          missing().slice(0, 20),
          [],
          `every acknowledged message arrived (${missing().length} did not)`,
        );
        assert.ok(
          most <= CONNECTIONS,
          `the MX had ${most} connections open at once (at most ${CONNECTIONS}): ${worst} (s after the start; ${froze.host} frozen at ${((froze.from - started) / 1000).toFixed(2)})`,
        );
      },
    );
  },
);
