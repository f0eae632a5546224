import { test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimDir } from '../config/paths.ts';
import { generateKeys } from './keys.ts';
import { finishRotation, startRotation } from './rotate.ts';
import { readPlan, SwitchLog } from './switches.ts';

const DAY = 86_400_000;
const T0 = new Date('2026-11-01T00:00:00Z');
const at = (days: number) => new Date(T0.getTime() + days * DAY);

test('--finish: refused before the grace ends and while mail signed with the old keys is queued; then it deletes the old keys and the plan', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-finish-'));
  await writeFile(join(dir, 'posta.toml'), 'hostname = "mail.example.com"\n');
  const old = await generateKeys(dkimDir(dir, 'example.com'), T0);
  const { plan } = await startRotation({
    configDir: dir,
    domain: 'example.com',
    now: at(1),
    after: null,
    graceDays: 7,
    lifetimeMs: 5 * DAY,
  });
  const switches = await SwitchLog.open(await mkdtemp(join(tmpdir(), 'posta-data-')));
  let queued = 0;
  const asked: [string, Date][] = [];
  const finish = (now: Date) =>
    finishRotation({
      configDir: dir,
      domain: 'example.com',
      switches,
      now,
      queuedBefore: (domain, before) => {
        asked.push([domain, before]);
        return queued;
      },
    });
  await assert.rejects(finish(at(2)), /has not switched example\.com to the new keys/);
  await switches.record('example.com', plan.newSelectors, at(2));
  await assert.rejects(finish(at(8)), /still needed until 2026-11-10/);
  queued = 2;
  await assert.rejects(
    finish(at(10)),
    /2 messages queued before the switch of example\.com \(2026-11-03T00:00:00\.000Z\) are still in the queue/,
  );
  assert.deepEqual(asked.at(-1), ['example.com', at(2)], 'asked for mail queued before the switch');
  queued = 0;
  const { removed } = await finish(at(10));
  assert.deepEqual(removed.map((k) => k.selector).sort(), old.map((k) => k.selector).sort());
  for (const k of old) await assert.rejects(access(k.file), { code: 'ENOENT' });
  assert.equal(await readPlan(dir, 'example.com'), null);
  await assert.rejects(finish(at(11)), /No DKIM key rotation of example\.com is under way/);
});
