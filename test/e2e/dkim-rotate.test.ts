/**
 * DKIM key rotation end to end: a real `posta serve` signs and delivers to a
 * receiving MX on loopback, a DNS server on loopback publishes the keys, and
 * dkimpy verifies what arrives there. `posta dkim rotate` adds new keys; the
 * server keeps signing with the old ones while the new records are missing
 * (or only one of them is there), switches once both are visible, remembers
 * the switch over a restart, and the mail signed before the switch still
 * verifies while the old records stay published.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { posta } from '../helpers/posta.ts';
import { dkimpy, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { randomLoopback } from '../helpers/net.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startReceiver, type ReceivedMessage, type Receiver } from '../helpers/receiver.ts';
import { submit } from '../helpers/smtp.ts';

let dns: DnsServer;
let rx: Receiver;
let s: TestServer;
let base: string;

before(async () => {
  const mx = randomLoopback();
  rx = await startReceiver({ listen: [`${mx}:25`] });
  base = [SOA('test'), 'dest.test. IN MX 10 mx.dest.test.', `mx.dest.test. IN A ${mx}`].join('\n');
  dns = await startDns(`${base}\n`);
  // The server checks a rotation's new records every second.
  s = await startServer({ dns: dns.endpoint, extraToml: '[dkim]\nrotation_check = 1' });
});

after(async () => {
  await s?.stop();
  await rx?.stop();
  dns?.stop();
});

/** The s= of each DKIM-Signature of a message, in order. */
function selectors(m: ReceivedMessage): string[] {
  const head = m.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
  return head
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n')
    .filter((l) => /^DKIM-Signature:/i.test(l))
    .map((l) => /[;\s]s=([^;\s]+)/.exec(l)?.[1] ?? '?');
}

async function send(subject: string): Promise<ReceivedMessage> {
  await submit(s, 'bob@dest.test', subject);
  return rx.arrival((m) => m.data.toString().includes(`Subject: ${subject}`), subject);
}

async function verifies(m: ReceivedMessage, what: string): Promise<void> {
  const v = await dkimpy(dns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, `${what}: ${v.out}`);
  assert.match(v.out, /a=ed25519-sha256 ok/, what);
  assert.match(v.out, /a=rsa-sha256 ok/, what);
}

/** The zone-file lines (not comments) of `posta dns` or `posta dkim rotate` output that match. */
const records = (out: string, match: RegExp) =>
  out.split('\n').filter((l) => !l.startsWith(';') && match.test(l));

test('a rotation switches only once both new records are visible, and mail signed before and after verifies during the overlap', async () => {
  const dkimDir = join(s.dir, 'domains/example.test/dkim');
  const old = (await readdir(dkimDir)).map((n) => n.split('.')[0] ?? '').sort();
  assert.equal(old.length, 2, 'posta init made two keys');
  const published = await posta(['dns', 'example.test', '--dir', s.dir]);
  assert.equal(published.code, 0, published.stderr);
  const oldRecords = records(published.stdout, /_domainkey/);
  await dns.update(`${base}\n${oldRecords.join('\n')}\n`);
  await verifies(await send('before the rotation'), 'before the rotation');

  // posta dkim rotate: two new keys and their records, printed
  let rotate!: Awaited<ReturnType<typeof posta>>;
  let from = s.logs.length;
  await s.reload(async () => {
    rotate = await posta(['dkim', 'rotate', 'example.test', '--dir', s.dir]);
  });
  assert.equal(rotate.code, 0, rotate.stderr);
  const newRecords = records(rotate.stdout, /_domainkey\.example\.test\.\s/);
  assert.equal(newRecords.length, 2, rotate.stdout);
  const fresh = newRecords.map((l) => l.split('.')[0] ?? '');
  assert.ok(
    fresh.every((sel) => !old.includes(sel)),
    'new selectors',
  );
  assert.match(rotate.stdout, /keeps signing with/);
  const [rsaRecord = '', edRecord = ''] = newRecords;
  assert.match(rsaRecord, /k=rsa/);
  assert.match(edRecord, /k=ed25519/);
  assert.equal(
    (await s.logged(from, 'still signing with the old keys')).length > 0,
    true,
    'the server checked the new plan at once',
  );

  // only the RSA record published: still the old keys
  from = s.logs.length;
  await dns.update(`${base}\n${[...oldRecords, rsaRecord].join('\n')}\n`);
  const waiting = await s.logged(from, 'still signing with the old keys');
  assert.match(
    waiting[0] ?? '',
    new RegExp(`${fresh[1]}._domainkey.example.test has no key record`),
  );
  assert.doesNotMatch(waiting[0] ?? '', new RegExp(`${fresh[0]}._domainkey`), 'RSA one is seen');
  const before = await send('during the rotation, before the switch');
  assert.deepEqual(selectors(before).sort(), old, 'signed with the old keys only');
  await verifies(before, 'signed before the switch');
  const status = await posta(['dkim', 'status', 'example.test', '--dir', s.dir]);
  assert.match(status.stdout, new RegExp(`${fresh[0]}\\s+rsa\\s+pending, record published`));
  assert.match(status.stdout, new RegExp(`${fresh[1]}\\s+ed25519\\s+pending: .*no key record`));

  // both published: the server switches at its next check
  from = s.logs.length;
  await dns.update(`${base}\n${[...oldRecords, ...newRecords].join('\n')}\n`);
  const switched = await s.logged(from, 'signing with the new keys now');
  assert.equal(switched.length, 1, 'the server switched');
  const keepUntil = (JSON.parse(switched[0] ?? '{}') as { keepUntil?: string }).keepUntil ?? '';
  const days = (Date.parse(keepUntil) - Date.now()) / 86_400_000;
  assert.ok(days > 6.9 && days <= 7, `old records kept 7 days (${keepUntil})`);
  const afterSwitch = await send('after the switch');
  assert.deepEqual(
    selectors(afterSwitch).sort(),
    [...fresh].sort(),
    'signed with the new keys only',
  );
  await verifies(afterSwitch, 'signed after the switch');
  // the overlap: the message signed before the switch still verifies
  await verifies(before, 'signed before the switch, verified after it');

  const st = await posta(['status', '--json', '--dir', s.dir]);
  const health = JSON.parse(st.stdout) as {
    dkim: Record<string, string[]>;
    dkimRotation: Record<string, string>;
  };
  assert.deepEqual(
    health.dkim['example.test']?.sort(),
    [...fresh].sort(),
    'posta status: the signing keys',
  );
  assert.match(
    health.dkimRotation['example.test'] ?? '',
    /keep the records of .* published until /,
  );
  // the old keys are retiring: status says until when, --finish refuses
  const retiring = await posta(['dkim', 'status', 'example.test', '--dir', s.dir]);
  assert.match(retiring.stdout, /keep the old records published until/);
  assert.match(retiring.stdout, new RegExp(`${old[0]}\\s+\\S+\\s+retiring: keep its record until`));
  const finish = await posta(['dkim', 'rotate', 'example.test', '--finish', '--dir', s.dir]);
  assert.equal(finish.code, 1);
  assert.match(finish.stderr, /are still needed until/);
  assert.deepEqual((await readdir(dkimDir)).length, 5, 'no key deleted');

  // the switch holds over a restart (the data folder remembers it), even
  // while DNS does not answer for the new records
  await s.stop();
  await dns.update(
    `${base}\n${oldRecords.join('\n')}\n; servfail ${fresh[0]}._domainkey.example.test.\n`,
  );
  await s.restart();
  const restarted = await send('after a restart');
  assert.deepEqual(selectors(restarted).sort(), [...fresh].sort(), 'still the new keys');
});
