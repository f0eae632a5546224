import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDb } from '../db/db.ts';
import { MIGRATIONS } from '../queue/spool.ts';
import { newQueueId } from '../queue/id.ts';
import { runSqlite } from '../store/statement.ts';
import {
  eventInsert,
  listEvents,
  mailInsert,
  mailRecord,
  mailRow,
  eventsRetention,
} from './events.ts';

const DAY = 86_400_000;

test('a prune removes what is older than the cut, keeps the rest, and never gives an id again', () => {
  const db = openDb(':memory:', MIGRATIONS);
  const now = Date.now();
  const ids: string[] = [];
  for (const age of [40, 35, 31, 29, 1]) {
    const at = now - age * DAY;
    const id = newQueueId(at);
    ids.push(id);
    runSqlite(
      db,
      mailInsert(
        mailRow({
          message: id,
          createdAt: at,
          sender: 'a@example.test',
          apiKey: null,
          tags: {},
          recipients: ['b@dest.test'],
          head: Buffer.from('From: a@example.test\r\nSubject: x\r\n\r\n'),
        }),
      ),
    );
    runSqlite(
      db,
      eventInsert({ message: id, type: 'Send', at, recipients: ['b@dest.test'], detail: {} }),
    );
  }
  const before = listEvents(db).map((e) => e.id);
  for (const st of eventsRetention(now - 30 * DAY)) runSqlite(db, st);
  assert.deepEqual(
    listEvents(db).map((e) => e.message),
    ids.slice(3),
  );
  assert.equal(mailRecord(db, ids[0] ?? ''), undefined);
  assert.equal(mailRecord(db, ids[3] ?? '')?.headers[1]?.value, 'x');
  for (const st of eventsRetention(now + DAY)) runSqlite(db, st); // everything but the newest, which holds the ids' place
  assert.deepEqual(
    listEvents(db).map((e) => e.id),
    [Math.max(...before)],
  );
  runSqlite(db, eventInsert({ message: 'm', type: 'Send', at: now, recipients: [], detail: {} }));
  assert.equal(listEvents(db).at(-1)?.id, Math.max(...before) + 1, 'ids go on after the last');
});
