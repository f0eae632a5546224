import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openQueueDb } from '../../queue/spool.ts';
import {
  createLink,
  createSession,
  endSession,
  findSession,
  LINK_TTL_MS,
  redeemLink,
  SESSION_TTL_MS,
} from './sessions.ts';

test('a login link works once and not after it expires; the database keeps no token', async () => {
  const db = openQueueDb(await mkdtemp(join(tmpdir(), 'sessions-')));
  const t0 = Date.now();
  const a = createLink(db, t0);
  const b = createLink(db, t0);
  assert.notEqual(a, b);
  assert.equal(redeemLink(db, a, t0 + 1), true);
  assert.equal(redeemLink(db, a, t0 + 2), false);
  assert.equal(redeemLink(db, 'made-up', t0 + 2), false);
  assert.equal(redeemLink(db, b, t0 + LINK_TTL_MS), false);
  const s = createSession(db, t0);
  const stored = JSON.stringify(db.prepare('SELECT * FROM admin_tokens').all());
  assert.ok(!stored.includes(s.token));
  db.close();
});

test('a session is found by its token until it ends or expires', async () => {
  const db = openQueueDb(await mkdtemp(join(tmpdir(), 'sessions-')));
  const t0 = Date.now();
  const s = createSession(db, t0);
  assert.deepEqual(findSession(db, s.token, t0 + 1), s);
  assert.equal(findSession(db, s.token, t0 + SESSION_TTL_MS), null);
  assert.equal(findSession(db, `${s.token}x`, t0 + 1), null);
  endSession(db, s.token);
  assert.equal(findSession(db, s.token, t0 + 1), null);
  db.close();
});
