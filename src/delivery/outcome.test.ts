import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReply, fromReply, local, parseReply } from './outcome.ts';

const cases: [string, string | undefined, number | undefined, string | null, string][] = [
  [
    'a 250 with enhanced code',
    '250 2.0.0 Ok: queued as X',
    undefined,
    '250 2.0.0 Ok: queued as X',
    'delivered',
  ],
  [
    'a 550 with enhanced code',
    '550 5.1.1 <a@b>: no such user',
    undefined,
    '550 5.1.1 <a@b>: no such user',
    'permanent',
  ],
  [
    'a 451 without enhanced code gets a class default',
    '451 try later',
    undefined,
    '451 4.0.0 try later',
    'transient',
  ],
  [
    'a multi-line reply is joined',
    '421-4.7.0 busy\r\n421 4.7.0 come back',
    undefined,
    '421 4.7.0 busy come back',
    'transient',
  ],
  [
    'a 421 is transient',
    '421 4.3.2 shutting down',
    undefined,
    '421 4.3.2 shutting down',
    'transient',
  ],
  [
    'no reply text with a code from elsewhere',
    'connection reset',
    554,
    '554 5.0.0 connection reset',
    'permanent',
  ],
  ['nothing at all', undefined, undefined, null, ''],
];

for (const [name, text, fallback, want, kind] of cases) {
  test(`reply: ${name}`, () => {
    const r = parseReply(text, fallback);
    assert.equal(r ? `${r.code} ${r.enhanced} ${r.text}` : null, want);
    if (r) assert.equal(fromReply(r).kind, kind);
  });
}

test("local: Node's --use-system-ca advice is cut from the reply (so from the queue and DSNs)", () => {
  const node =
    'unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca';
  const o = local('transient', '4.7.5', `TLS with mx.example.org [192.0.2.1]:25 failed: ${node}`);
  assert.equal(
    formatReply(o.reply),
    '451 4.7.5 TLS with mx.example.org [192.0.2.1]:25 failed: unable to verify the first certificate',
  );
});
