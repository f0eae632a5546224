import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { commandOf, ReplyDeadlines, type Waiting } from './deadline.ts';

const commands: [string, Waiting][] = [
  ['EHLO mail.example.test', 'EHLO'],
  ['HELO mail.example.test', 'EHLO'],
  ['MAIL FROM:<a@example.test> SIZE=10', 'MAIL FROM'],
  ['rcpt to:<b@example.test>', 'RCPT TO'],
  ['DATA', 'DATA'],
  ['STARTTLS', 'STARTTLS'],
  ['AUTH PLAIN AGEAYg==', 'AUTH'],
  ['QUIT', 'QUIT'],
  ['NOOP', 'RSET'],
];

for (const [line, want] of commands) {
  test(`deadline: ${JSON.stringify(line)} waits as ${want}`, () => {
    assert.equal(commandOf(line), want);
  });
}

function deadlines(replyMs: number) {
  const missed: string[] = [];
  const d = new ReplyDeadlines({
    replyMs,
    server: 'mx.example.test',
    onMiss: (t) => missed.push(t),
  });
  return { d, missed };
}

test('deadline: a reply that does not come in time is a miss, with what it answered', async () => {
  const { d, missed } = deadlines(1000);
  d.expect('MAIL FROM');
  d.replied();
  d.expect('RCPT TO');
  for (let i = 0; i < 500 && missed.length === 0; i++) await sleep(20);
  assert.deepEqual(missed, ['mx.example.test did not finish its reply to RCPT TO within 1 second']);
});

test('deadline: pipelined commands are answered in order; all answered is no miss', async () => {
  const { d, missed } = deadlines(200);
  d.expect('MAIL FROM');
  d.expect('RCPT TO');
  d.expect('DATA');
  d.replied();
  d.replied();
  d.replied();
  await sleep(400);
  assert.deepEqual(missed, []);
  d.stop();
});

test('deadline: the ceiling of the attempt ends it whatever is due', async () => {
  const { d, missed } = deadlines(60_000);
  d.begin(Date.now() + 30, 30 * 60_000);
  d.expect('the end of data');
  for (let i = 0; i < 500 && missed.length === 0; i++) await sleep(20);
  assert.deepEqual(missed, [
    'The delivery attempt (last to mx.example.test) did not finish within 30 minutes',
  ]);
});
