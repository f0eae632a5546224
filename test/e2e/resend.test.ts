/**
 * The Resend API with the real `resend` SDK (resend-node), pointed at a real
 * `posta serve` by its base URL alone and given the Resend API key `posta
 * key create` prints: what it sends arrives at an independent MX with both
 * DKIM signatures valid (dkimpy) and Bcc only in the envelope; the id it
 * gets is the queue id, and emails.get() follows the message to its last
 * event; each way a request can be wrong gets the error name the SDK
 * knows; an Idempotency-Key sent twice sends once.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Resend, type ErrorResponse } from 'resend';
import { posta } from '../helpers/posta.ts';
import { dkimpy, SOA, startDns, type DnsServer } from '../helpers/dns.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let dkimDns: DnsServer;
let s: TestServer;
let key: { access_key_id: string; resend_api_key: string };
let baseUrl: string;
let resend: Resend;

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ http: true, dns: mx.dns.endpoint });
  baseUrl = `http://${s.host}:${s.ports.http}`;
  const made = await posta(['key', 'create', '--domain', 'example.test', '--json', '--dir', s.dir]);
  assert.equal(made.code, 0, made.stderr);
  key = JSON.parse(made.stdout) as typeof key;
  resend = new Resend(key.resend_api_key, { baseUrl });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  assert.equal(records.code, 0, records.stderr);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

/** A PNG signature and a few bytes: binary, so it travels in base64. */
const PNG_BYTES = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 1, 2, 255]);

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

/**
 * The log lines of queued API sends from index `from` on, once there are
 * `expect` of them (the server's log reaches the test a little after its
 * answer), and a little more, so that one too many shows.
 */
async function queuedSince(from: number, expect: number): Promise<string[]> {
  const lines = () => s.logs.slice(from).filter((l) => l.includes('"msg":"API send queued"'));
  for (let i = 0; i < 300 && lines().length < expect; i++) await sleep(100);
  await sleep(200);
  return lines();
}

/** emails.get(id) until its last_event is `event` (delivery is recorded after the MX's 250). */
async function lastEvent(id: string, event: string) {
  for (let i = 0; ; i++) {
    const got = await resend.emails.get(id);
    assert.equal(got.error, null, JSON.stringify(got.error));
    if (got.data?.last_event === event || i === 100) return got.data;
    await sleep(100);
  }
}

test('posta key create prints the Resend API key: re_<id>_<secret>', async () => {
  assert.match(key.resend_api_key, new RegExp(`^re_${key.access_key_id}_[A-Za-z0-9_-]{40}$`));
  const text = await posta(['key', 'create', '--domain', 'example.test', '--dir', s.dir]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^Resend API key: {4}re_AKPS[A-Z2-7]{16}_\S{40}$/m);
});

test('emails.send: html, text, cc, bcc, an attachment; Bcc only in the envelope, both DKIM signatures valid; the id is the queue id; emails.get() follows it to delivered', async () => {
  const from = s.logs.length;
  const sent = await resend.emails.send({
    from: 'Ada <ada@example.test>',
    to: ['rs-to@dest.test'],
    cc: 'rs-cc@dest.test',
    bcc: ['rs-bcc@dest.test'],
    replyTo: 'replies@example.test',
    subject: 'Grüße from the Resend SDK',
    text: 'Plain text from Resend.',
    html: '<p>HTML from <b>Resend</b>.</p>',
    headers: { 'X-Campaign': 'welcome' },
    tags: [{ name: 'category', value: 'welcome_mail' }],
    attachments: [{ filename: 'pixel.png', content: PNG_BYTES, contentType: 'image/png' }],
  });
  assert.equal(sent.error, null, JSON.stringify(sent.error));
  const id = sent.data?.id ?? '';
  assert.match(id, /^[0-9a-z]{18}$/);
  const queued = await queuedSince(from, 1);
  assert.equal(queued.length, 1, queued.join('\n'));
  assert.equal((JSON.parse(queued[0] ?? '{}') as { qid?: string }).qid, id);

  const m = await mx.rx.arrival(to('rs-bcc@dest.test'), 'the Resend message');
  assert.equal(m.mailFrom, 'ada@example.test');
  assert.deepEqual([...m.rcptTos].sort(), [
    'rs-bcc@dest.test',
    'rs-cc@dest.test',
    'rs-to@dest.test',
  ]);
  const text = m.data.toString();
  const head = text.split('\r\n\r\n')[0] ?? '';
  assert.ok(head.includes(` id ${id};`), 'Received names the id');
  assert.doesNotMatch(head, /^Bcc:/im);
  assert.doesNotMatch(text, /rs-bcc/);
  assert.match(head, /^To: rs-to@dest\.test$/im);
  assert.match(head, /^Cc: rs-cc@dest\.test$/im);
  assert.match(head, /^Reply-To: replies@example\.test$/im);
  assert.match(head, /^X-Campaign: welcome$/im);
  assert.match(head, /^Content-Type: multipart\/mixed;/im);
  assert.match(text, /Plain text from Resend\./);
  assert.match(text, /<p>HTML from <b>Resend<\/b>\.<\/p>/);
  assert.match(text, /^Content-Type: image\/png; name=pixel\.png$/im);
  assert.ok(text.includes(PNG_BYTES.toString('base64')), 'the attachment, in base64');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /0 d=example\.test a=ed25519-sha256 ok/);
  assert.match(v.out, /1 d=example\.test a=rsa-sha256 ok/);

  // `posta queue show` knows it by that id
  const shown = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
  assert.equal(shown.code, 0, shown.stderr);

  const email = await lastEvent(id, 'delivered');
  assert.equal(email?.last_event, 'delivered');
  assert.equal(email?.object, 'email');
  assert.equal(email?.id, id);
  assert.equal(email?.from, 'Ada <ada@example.test>');
  assert.deepEqual(email?.to, ['rs-to@dest.test']);
  assert.deepEqual(email?.cc, ['rs-cc@dest.test']);
  assert.deepEqual(email?.bcc, ['rs-bcc@dest.test']);
  assert.deepEqual(email?.reply_to, ['replies@example.test']);
  assert.equal(email?.subject, 'Grüße from the Resend SDK');
  assert.deepEqual(email?.tags, [{ name: 'category', value: 'welcome_mail' }]);
  assert.ok(!Number.isNaN(Date.parse(email?.created_at ?? '')), email?.created_at);
});

test('RESEND_BASE_URL, read when the client is made, points the SDK at posta too', async () => {
  process.env.RESEND_BASE_URL = baseUrl;
  const fromEnv = new Resend(key.resend_api_key);
  delete process.env.RESEND_BASE_URL;
  const sent = await fromEnv.emails.send({
    from: 'ada@example.test',
    to: 'rs-env@dest.test',
    subject: 'base URL from the environment',
    text: 'hello',
  });
  assert.equal(sent.error, null, JSON.stringify(sent.error));
  await mx.rx.arrival(to('rs-env@dest.test'), 'the message sent by RESEND_BASE_URL');
});

test('a bounce shows as last_event bounced', async () => {
  const sent = await resend.emails.send({
    from: 'ada@example.test',
    to: 'reject-rs@dest.test',
    subject: 'to be refused',
    text: 'no',
  });
  assert.equal(sent.error, null, JSON.stringify(sent.error));
  const email = await lastEvent(sent.data?.id ?? '', 'bounced');
  assert.equal(email?.last_event, 'bounced');
});

test('emails.batch.send of 2: two ids, two messages', async () => {
  const from = s.logs.length;
  const sent = await resend.batch.send([
    { from: 'ada@example.test', to: 'rs-batch1@dest.test', subject: 'one', text: 'first' },
    { from: 'ada@example.test', to: ['rs-batch2@dest.test'], subject: 'two', html: '<p>2</p>' },
  ]);
  assert.equal(sent.error, null, JSON.stringify(sent.error));
  const ids = sent.data?.data.map((d) => d.id) ?? [];
  assert.equal(ids.length, 2);
  assert.deepEqual(
    (await queuedSince(from, 2)).map((l) => (JSON.parse(l) as { qid: string }).qid),
    ids,
  );
  const [one, two] = await Promise.all([
    mx.rx.arrival(to('rs-batch1@dest.test'), 'batch message 1'),
    mx.rx.arrival(to('rs-batch2@dest.test'), 'batch message 2'),
  ]);
  assert.match(one.data.toString(), /first/);
  assert.match(two.data.toString(), /<p>2<\/p>/);
});

test('a strict batch with one bad email sends none; a permissive one sends the others and lists the refused', async () => {
  const from = s.logs.length;
  const emails = [
    { from: 'ada@example.test', to: 'rs-strict@dest.test', subject: 'ok', text: 'ok' },
    { from: 'eve@elsewhere.test', to: 'rs-strict@dest.test', subject: 'not ours', text: 'x' },
  ];
  const strict = await resend.batch.send(emails);
  assert.equal(strict.data, null);
  assert.equal(strict.error?.name, 'validation_error');
  assert.match(strict.error?.message ?? '', /^emails\[1\]: /);
  assert.deepEqual(await queuedSince(from, 0), []);

  const permissive = await resend.batch.send(emails, { batchValidation: 'permissive' });
  assert.equal(permissive.error, null, JSON.stringify(permissive.error));
  assert.equal(permissive.data?.data.length, 1);
  assert.deepEqual(
    permissive.data?.errors?.map((e) => e.index),
    [1],
  );
  assert.equal((await queuedSince(from, 1)).length, 1);
});

test('an Idempotency-Key sent twice: one message, one id; with another payload: invalid_idempotent_request', async () => {
  const from = s.logs.length;
  const email = {
    from: 'ada@example.test',
    to: 'rs-once@dest.test',
    subject: 'only once',
    text: 'sent once',
  };
  const first = await resend.emails.send(email, { idempotencyKey: 'welcome/user-42' });
  const second = await resend.emails.send(email, { idempotencyKey: 'welcome/user-42' });
  assert.equal(first.error, null, JSON.stringify(first.error));
  assert.equal(second.error, null, JSON.stringify(second.error));
  assert.equal(second.data?.id, first.data?.id);
  assert.equal((await queuedSince(from, 1)).length, 1);

  const other = await resend.emails.send(
    { ...email, subject: 'something else' },
    { idempotencyKey: 'welcome/user-42' },
  );
  assert.equal(other.data, null);
  assert.equal(other.error?.name, 'invalid_idempotent_request');
  assert.equal(other.error?.statusCode, 409);

  // the same key on a batch is another request
  const batch = await resend.batch.send([email], { idempotencyKey: 'batch-1' });
  const again = await resend.batch.send([email], { idempotencyKey: 'batch-1' });
  assert.deepEqual(again.data, batch.data);
  assert.equal((await queuedSince(from, 2)).length, 2);

  await mx.rx.arrival(to('rs-once@dest.test'), 'the idempotent message');
  await sleep(500);
  const arrived = (await mx.rx.messages()).filter(to('rs-once@dest.test'));
  assert.equal(arrived.length, 2, 'one from emails.send, one from batch.send');
});

test('errors come back as the SDK names them, and nothing is queued', async (t) => {
  const from = s.logs.length;
  const send = (r: Resend, over: Record<string, unknown> = {}) =>
    r.emails.send({
      from: 'ada@example.test',
      to: 'rs-never@dest.test',
      subject: 'never sent',
      text: 'x',
      ...over,
    });
  const wrong = `re_${key.access_key_id}_${'x'.repeat(40)}`;
  const cases: [
    string,
    () => Promise<{ data: unknown; error: ErrorResponse | null }>,
    number,
    string,
  ][] = [
    [
      'a From the key may not use',
      () => send(resend, { from: 'eve@elsewhere.test' }),
      403,
      'validation_error',
    ],
    ['a wrong secret', () => send(new Resend(wrong, { baseUrl })), 403, 'invalid_api_key'],
    [
      'a token of another form',
      () => send(new Resend('re_123', { baseUrl })),
      403,
      'invalid_api_key',
    ],
    ['no to', () => send(resend, { to: [] }), 422, 'missing_required_field'],
    [
      'a From that is no address',
      () => send(resend, { from: 'nobody' }),
      422,
      'invalid_from_address',
    ],
    ['scheduled_at', () => send(resend, { scheduledAt: 'in 1 hour' }), 422, 'validation_error'],
    [
      'an attachment by path',
      () =>
        send(resend, { attachments: [{ filename: 'a.pdf', path: 'https://example.com/a.pdf' }] }),
      422,
      'invalid_attachment',
    ],
    [
      'an Idempotency-Key over 256 characters',
      () =>
        resend.emails.send(
          { from: 'ada@example.test', to: 'rs-never@dest.test', subject: 's', text: 't' },
          { idempotencyKey: 'k'.repeat(257) },
        ),
      400,
      'invalid_idempotency_key',
    ],
    [
      'emails.get of an unknown id',
      () => resend.emails.get('0000000000unknown0'),
      404,
      'not_found',
    ],
  ];
  for (const [what, run, statusCode, name] of cases) {
    await t.test(what, async () => {
      const r = await run();
      assert.equal(r.data, null);
      assert.equal(r.error?.name, name, JSON.stringify(r.error));
      assert.equal(r.error?.statusCode, statusCode);
      assert.match(r.error?.message ?? '', /\S/);
    });
  }
  assert.deepEqual(await queuedSince(from, 0), []);
});

test('no Authorization header: missing_api_key (401)', async () => {
  const r = await fetch(`${baseUrl}/emails`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(r.status, 401);
  assert.deepEqual(await r.json(), {
    statusCode: 401,
    name: 'missing_api_key',
    message: 'Missing API key in the authorization header.',
  });
});

test('a base URL with a path prefix works', async () => {
  const prefixed = new Resend(key.resend_api_key, { baseUrl: `${baseUrl}/resend` });
  const sent = await prefixed.emails.send({
    from: 'ada@example.test',
    to: 'rs-prefix@dest.test',
    subject: 'through a prefix',
    text: 'hello',
  });
  assert.equal(sent.error, null, JSON.stringify(sent.error));
  await mx.rx.arrival(to('rs-prefix@dest.test'), 'the message sent through a prefix');
});

test('emails.get finds an email only with the key it was sent with', async () => {
  const sent = await resend.emails.send({
    from: 'ada@example.test',
    to: 'rs-mine@dest.test',
    subject: 'mine',
    text: 'mine',
  });
  assert.equal(sent.error, null, JSON.stringify(sent.error));
  const made = await posta(['key', 'create', '--domain', 'example.test', '--json', '--dir', s.dir]);
  assert.equal(made.code, 0, made.stderr);
  const other = new Resend((JSON.parse(made.stdout) as typeof key).resend_api_key, { baseUrl });
  const got = await other.emails.get(sent.data?.id ?? '');
  assert.equal(got.error?.name, 'not_found', JSON.stringify(got));
  assert.equal((await resend.emails.get(sent.data?.id ?? '')).error, null);
});
