import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { generateKeys, type DkimKey } from './keys.ts';
import { dkimTxt } from './keys.ts';
import {
  formatRotation,
  keyState,
  maySwitch,
  parseRotation,
  signingKeys,
  type RotationPlan,
} from './rotation.ts';
import { startRotator } from './rotator.ts';
import { SwitchLog } from './switches.ts';

const DAY = 86_400_000;
const T0 = new Date('2026-12-01T10:00:00Z');
const at = (days: number) => new Date(T0.getTime() + days * DAY);

const plan: RotationPlan = {
  newSelectors: ['n-r', 'n-e'],
  oldSelectors: ['o-r', 'o-e'],
  started: T0,
  after: null,
  graceDays: 7,
};

test('the plan file: what rotate writes reads back; bad files name the key', () => {
  const withAfter = { ...plan, after: at(3) };
  assert.deepEqual(parseRotation('f', formatRotation('example.com', withAfter)), withAfter);
  assert.deepEqual(parseRotation('f', formatRotation('example.com', plan)), plan);
  const cases: [string, string, RegExp][] = [
    ['not TOML', 'new = [', /f is not valid TOML \(line 1\): unfinished array\.$/],
    ['no new', 'old = ["b"]\nstarted = 2026-12-01T10:00:00Z', /f: new must be a list of selectors/],
    [
      'a bad selector',
      'new = ["a.b"]\nold = ["b"]\nstarted = 2026-12-01T10:00:00Z',
      /"a\.b", which is not a selector/,
    ],
    ['no started', 'new = ["a"]\nold = ["b"]', /f: started must be a date/],
    [
      'a typo',
      'new = ["a"]\nold = ["b"]\nstarted = 2026-12-01T10:00:00Z\ngrace = 3',
      /unknown key grace/,
    ],
    [
      'grace < 0',
      'new = ["a"]\nold = ["b"]\nstarted = 2026-12-01T10:00:00Z\ngrace_days = -1',
      /grace_days must be/,
    ],
    ['in both', 'new = ["a"]\nold = ["a"]\nstarted = 2026-12-01T10:00:00Z', /a is in both/],
  ];
  for (const [name, text, error] of cases) {
    assert.throws(() => parseRotation('f', text), error, name);
  }
});

test('key states and the keys that sign, through pending → switched → retired', () => {
  const keys = ['o-r', 'o-e', 'n-r', 'n-e', 'other'].map((selector) => ({ selector }));
  // [moment, switched at, state of o-r, of n-r, of other, signing]
  const cases: [string, Date, Date | null, string, string, string, string[]][] = [
    ['before the switch', at(1), null, 'active', 'pending', 'active', ['o-r', 'o-e', 'other']],
    ['just switched', at(2), at(2), 'retiring', 'active', 'active', ['n-r', 'n-e', 'other']],
    ['in the grace', at(8.9), at(2), 'retiring', 'active', 'active', ['n-r', 'n-e', 'other']],
    ['grace over', at(9), at(2), 'retired', 'active', 'active', ['n-r', 'n-e', 'other']],
  ];
  for (const [name, now, switched, oldState, newState, otherState, signing] of cases) {
    assert.equal(keyState('o-r', plan, switched, now), oldState, name);
    assert.equal(keyState('n-r', plan, switched, now), newState, name);
    assert.equal(keyState('other', plan, switched, now), otherState, name);
    assert.deepEqual(
      signingKeys(keys, plan, switched).map((k) => k.selector),
      signing,
      name,
    );
  }
  assert.equal(keyState('o-r', null, null, at(1)), 'active', 'no plan: every key is active');
  assert.deepEqual(signingKeys(keys, null, null), keys);
});

test('the switch needs the records, and waits for after', () => {
  const later = { ...plan, after: at(5) };
  const cases: [string, RotationPlan, Date, boolean, boolean][] = [
    ['records missing', plan, at(1), false, false],
    ['records visible', plan, at(1), true, true],
    ['visible, before after', later, at(4), true, false],
    ['visible, after after', later, at(5), true, true],
    ['after passed, records missing', later, at(6), false, false],
  ];
  for (const [name, p, now, visible, want] of cases)
    assert.equal(maySwitch(p, now, visible), want, name);
});

/** A resolver answering TXT from a map that the test changes; a name in `failing` is SERVFAIL. */
function zone() {
  const txt = new Map<string, string>();
  const failing = new Set<string>();
  const resolve = (name: string) => {
    if (failing.has(name))
      return Promise.reject(Object.assign(new Error('SERVFAIL'), { code: 'ESERVFAIL' }));
    const v = txt.get(name);
    if (v === undefined)
      return Promise.reject(Object.assign(new Error('nx'), { code: 'ENOTFOUND' }));
    return Promise.resolve([[v]]);
  };
  return { txt, failing, resolve };
}

test('the server switches once every new record is visible with its key, records it, and says when the old ones may go', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'posta-rot-'));
  const keys: DkimKey[] = await generateKeys(join(dir, 'dkim'), T0, { rsa: 'n-r', ed25519: 'n-e' });
  const [rsa, ed] = keys as [DkimKey, DkimKey];
  const other = (await generateKeys(join(dir, 'other'), T0))[0] as DkimKey;
  const switches = await SwitchLog.open(dir);
  const z = zone();
  let now = at(1);
  const lines: { msg: string }[] = [];
  const log = pino(
    { level: 'info' },
    { write: (l: string) => lines.push(JSON.parse(l) as { msg: string }) },
  );
  const directory = {
    names: () => ['example.com'],
    allKeys: () => keys,
    rotation: () => ({ plan, switchedAt: switches.get('example.com', plan) }),
  };
  const r = startRotator({
    directory,
    switches,
    resolver: () => z.resolve,
    log,
    intervalMs: 3_600_000,
    now: () => now,
  });
  const name = (k: DkimKey) => `${k.selector}._domainkey.example.com`;
  const msgs = () => lines.map((l) => l.msg);
  try {
    // [step, change to DNS, switched at]
    const steps: [string, () => void, Date | null][] = [
      ['nothing published', () => {}, null],
      ['only the RSA record', () => z.txt.set(name(rsa), dkimTxt(rsa)), null],
      ['the Ed25519 name with another key', () => z.txt.set(name(ed), dkimTxt(other)), null],
      [
        'the Ed25519 record, but DNS fails for the RSA one',
        () => {
          z.txt.set(name(ed), dkimTxt(ed));
          z.failing.add(name(rsa));
        },
        null,
      ],
      ['both visible', () => z.failing.clear(), at(1)],
      ['both gone again: the switch holds', () => z.txt.clear(), at(1)],
    ];
    for (const [step, change, want] of steps) {
      change();
      await r.check();
      assert.deepEqual(switches.get('example.com', plan), want, step);
    }
    assert.equal(msgs().filter((m) => m.includes('signing with the new keys now')).length, 1);
    assert.ok(msgs().includes('dkim rotation: still signing with the old keys'));
    // a new log read from the file sees the same switch (the server after a restart)
    assert.deepEqual((await SwitchLog.open(dir)).get('example.com', plan), at(1));
    assert.equal(
      (await SwitchLog.open(dir)).get('example.com', { ...plan, newSelectors: ['x'] }),
      null,
      'another plan',
    );
    now = at(8);
    await r.check();
    await r.check();
    assert.equal(msgs().filter((m) => m.includes('the grace is over')).length, 1, 'said once');
  } finally {
    r.stop();
  }
});
