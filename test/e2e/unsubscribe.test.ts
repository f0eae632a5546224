/**
 * One-click unsubscribe (RFC 8058), end to end: mail sent with SES v2's
 * ListManagementOptions (the AWS SDK for JavaScript) or with
 * "X-Posta-Unsubscribe: one-click" over SMTP submission arrives at a real MX
 * with List-Unsubscribe (an https URL on posta's listener and a mailto:
 * address), List-Unsubscribe-Post and Feedback-ID, all signed (dkimpy);
 * curl's one-click POST to the URL, or swaks's mail to the mailto: address
 * on port 25, puts the recipient on the suppression list with reason
 * UNSUBSCRIBE and records a Subscription event, and the next message to it
 * is never delivered. A GET never unsubscribes; a made-up token does
 * nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { posta } from '../helpers/posta.ts';
import { events as eventList, eventsUntil } from '../helpers/events.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';
import { dkimpy, SOA, startDns, type DnsServer } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { submit } from '../helpers/smtp.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let s: TestServer;
let dkimDns: DnsServer;
let keyId: string;
let client: SESv2Client;

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({
    http: true,
    https: true,
    dns: mx.dns.endpoint,
    extraToml: ['[bulk]', 'feedback_id = "postatest"'].join('\n'),
  });
  const made = await posta(['key', 'create', '--domain', 'example.test', '--json', '--dir', s.dir]);
  assert.equal(made.code, 0, made.stderr);
  const k = JSON.parse(made.stdout) as { access_key_id: string; secret_access_key: string };
  keyId = k.access_key_id;
  client = new SESv2Client({
    endpoint: `http://${s.host}:${s.ports.http}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: k.access_key_id, secretAccessKey: k.secret_access_key },
  });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr }),
    );
  });
}

/** curl against the https listener, as mail.example.test, trusting the test certificate. */
function curl(args: string[]): Promise<{ code: number; out: string }> {
  return run('curl', [
    ...['-sS', '--resolve', `mail.example.test:443:${s.host}`, '--cacert', s.certFile],
    ...['-o', '/dev/null', '-w', '%{http_code} %{redirect_url}'],
    ...args,
  ]);
}

interface SesEvent {
  eventType: string;
  mail: { messageId: string; tags: Record<string, string[]> };
  bounce?: { bounceSubType: string };
  subscription?: {
    contactList: string;
    source: string;
    newTopicPreferences: {
      unsubscribeAll: boolean;
      topicSubscriptionStatus: { topicName: string; subscriptionStatus: string }[];
    };
  };
}

const events = (id: string) => eventList<SesEvent>(s.dir, id);

/** The first event of `type` for `id`, once there is one. */
async function eventUntil(id: string, type: string): Promise<SesEvent> {
  const list = await eventsUntil<SesEvent>(s.dir, id, type);
  return list.find((e) => e.eventType === type) as SesEvent;
}

async function suppressedAs(address: string): Promise<string | undefined> {
  const r = await posta(['suppress', 'list', '--json', '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as { address: string; reason: string }[];
  return rows.find((x) => x.address === address)?.reason;
}

/** A header field of a received message, unfolded. */
function field(m: ReceivedMessage, name: string): string | undefined {
  const head = m.data.toString('latin1').split('\r\n\r\n')[0] ?? '';
  const re = new RegExp(`^${name}:[ \\t]*((?:.*)(?:\\r\\n[ \\t].*)*)`, 'im');
  return re.exec(head)?.[1]?.replace(/\r\n[ \t]*/g, ' ');
}

/** The https URL and the mailto: address of List-Unsubscribe. */
function links(m: ReceivedMessage): { url: string; mailto: string } {
  const value = field(m, 'List-Unsubscribe') ?? '';
  const url = /<(https:[^>]+)>/.exec(value)?.[1];
  const mailto = /<mailto:([^>?]+)(?:\?[^>]*)?>/.exec(value)?.[1];
  assert.ok(url && mailto, `List-Unsubscribe: ${value}`);
  return { url, mailto };
}

async function sesSend(to: string[], campaign?: string): Promise<string> {
  const out = await client.send(
    new SendEmailCommand({
      FromEmailAddress: 'news@example.test',
      Destination: { ToAddresses: to },
      Content: {
        Simple: { Subject: { Data: `news for ${to[0]}` }, Body: { Text: { Data: 'hi' } } },
      },
      ListManagementOptions: { ContactListName: 'newsletter', TopicName: 'weekly' },
      ...(campaign ? { EmailTags: [{ Name: 'campaign', Value: campaign }] } : {}),
    }),
  );
  assert.ok(out.MessageId);
  return out.MessageId;
}

/** Submitted on 587 as the test account, with header fields of its own. */
const submitWith = (to: string, headers: Record<string, string>) =>
  submit(s, to, 'list', 'hi', headers);

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

/** The next message to `address` is accepted but never delivered: suppressed. */
async function notDelivered(id: string, address: string): Promise<void> {
  const bounce = await eventUntil(id, 'Bounce');
  assert.equal(bounce.bounce?.bounceSubType, 'OnAccountSuppressionList');
  await sleep(300);
  const got = (await mx.rx.messages()).filter(to(address));
  assert.equal(got.length, 1, 'only the first message reached the MX');
}

test('SES ListManagementOptions: signed List-Unsubscribe, List-Unsubscribe-Post and Feedback-ID; a GET does nothing, the one-click POST unsubscribes', async () => {
  const rcpt = 'reader@dest.test';
  const id = await sesSend([rcpt], 'spring');
  const m = await mx.rx.arrival(to(rcpt), 'the newsletter');
  const { url, mailto } = links(m);
  assert.match(url, /^https:\/\/mail\.example\.test\/unsubscribe\/[a-z2-7]{26}$/);
  assert.match(mailto, /^unsubscribe\+[a-z2-7]{26}@example\.test$/);
  assert.equal(field(m, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
  assert.equal(field(m, 'Feedback-ID'), `spring:${keyId}:bulk:postatest`);
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  const signed = (field(m, 'DKIM-Signature') ?? '').replace(/\s+/g, '');
  const h = /;h=([^;]+)/.exec(signed)?.[1]?.toLowerCase().split(':') ?? [];
  for (const name of ['list-unsubscribe', 'list-unsubscribe-post', 'feedback-id']) {
    assert.ok(h.includes(name), `${name} in h=${h.join(':')}`);
  }

  // RFC 8058 §4: a GET (a link scanner) shows a page and unsubscribes nobody
  const page = await run('curl', [
    ...['-sS', '--resolve', `mail.example.test:443:${s.host}`, '--cacert', s.certFile, url],
  ]);
  assert.equal(page.code, 0, page.out);
  assert.match(page.out, /<form method="post">/);
  assert.match(page.out, /name="List-Unsubscribe" value="One-Click"/);
  assert.equal(await suppressedAs(rcpt), undefined, 'a GET does not unsubscribe');
  // a POST that is not one-click does nothing either
  assert.equal((await curl(['-d', 'List-Unsubscribe=Maybe', url])).out.trim(), '400');

  // the receiver's one-click POST (RFC 8058 §3.2): 200, no redirect, no cookie
  const post = await curl(['-d', 'List-Unsubscribe=One-Click', url]);
  assert.equal(post.code, 0, post.out);
  assert.equal(post.out.trim(), '200', 'answered 200 with no redirect');
  assert.equal(await suppressedAs(rcpt), 'UNSUBSCRIBE');
  const e = await eventUntil(id, 'Subscription');
  assert.equal(e.subscription?.contactList, 'newsletter');
  assert.equal(e.subscription?.source, 'UnsubscribeHeader');
  assert.equal(e.subscription?.newTopicPreferences.unsubscribeAll, true);
  assert.deepEqual(e.subscription?.newTopicPreferences.topicSubscriptionStatus, [
    { topicName: 'weekly', subscriptionStatus: 'OptOut' },
  ]);
  assert.deepEqual(e.mail.tags['ses:contact-list'], ['newsletter']);
  // a second POST (a retry) is answered the same and records nothing more
  assert.equal((await curl(['-d', 'List-Unsubscribe=One-Click', url])).out.trim(), '200');
  assert.equal((await events(id)).filter((x) => x.eventType === 'Subscription').length, 1);

  await notDelivered(await sesSend([rcpt]), rcpt);
});

test('X-Posta-Unsubscribe over SMTP submission; a mail to the mailto: address on port 25 unsubscribes', async () => {
  const rcpt = 'other@dest.test';
  const id = await submitWith(rcpt, { 'X-Posta-Unsubscribe': 'one-click' });
  const m = await mx.rx.arrival(to(rcpt), 'the list mail');
  assert.equal(field(m, 'X-Posta-Unsubscribe'), undefined, 'the request field is removed');
  assert.equal(field(m, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  const { mailto } = links(m);

  const sw = await run('swaks', [
    ...['--server', `${s.host}:${s.ports.smtp}`, '--ehlo', 'mail.dest.test'],
    ...['--from', rcpt, '--to', mailto, '--header', 'Subject: unsubscribe'],
  ]);
  assert.equal(sw.code, 0, sw.out);
  assert.match(sw.out, /<- +250 2\.0\.0 Ok: unsubscribed/, 'taken, not queued');
  assert.equal(await suppressedAs(rcpt), 'UNSUBSCRIBE');
  await eventUntil(id, 'Subscription');
  await notDelivered(await submitWith(rcpt, {}), rcpt);
});

test('a made-up token unsubscribes nobody: 404 on https, 550 on port 25', async () => {
  const fake = 'a'.repeat(26);
  const post = await curl([
    '-d',
    'List-Unsubscribe=One-Click',
    `https://mail.example.test/unsubscribe/${fake}`,
  ]);
  assert.equal(post.out.trim(), '404');
  const sw = await run('swaks', [
    ...['--server', `${s.host}:${s.ports.smtp}`, '--ehlo', 'mail.dest.test'],
    ...['--from', 'x@dest.test', '--to', `unsubscribe+${fake}@example.test`],
  ]);
  assert.notEqual(sw.code, 0);
  assert.match(sw.out, /<\*\* +550 5\.1\.1 /);
});

test('asking for one-click unsubscribe with two recipients is a BadRequest, and nothing is sent', async () => {
  await assert.rejects(sesSend(['a@dest.test', 'b@dest.test']), (err: Error) => {
    assert.equal(err.name, 'BadRequestException');
    assert.match(err.message, /one recipient per message/);
    return true;
  });
});

/** A cron-style digest through `posta sendmail -t`, asking for one-click unsubscribe. */
async function sendmailDigest(rcpt: string): Promise<void> {
  const r = await posta(['sendmail', '-t', '--dir', s.dir], {
    input: [
      `From: ${s.user}`,
      `To: ${rcpt}`,
      'Subject: nightly digest',
      'X-Posta-Unsubscribe: one-click',
      '',
      'digest',
      '',
    ].join('\n'),
  });
  assert.equal(r.code, 0, r.stderr);
}

/** The digest arrived with the fields, signed, and without the request field. */
async function digestArrived(rcpt: string): Promise<ReceivedMessage> {
  const m = await mx.rx.arrival(to(rcpt), 'the sendmail digest');
  assert.equal(field(m, 'X-Posta-Unsubscribe'), undefined, 'the request field is removed');
  assert.equal(field(m, 'List-Unsubscribe-Post'), 'List-Unsubscribe=One-Click');
  assert.match(links(m).mailto, /^unsubscribe\+[a-z2-7]{26}@example\.test$/);
  assert.match(field(m, 'Feedback-ID') ?? '', /:postatest$/);
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  return m;
}

test('posta sendmail through the running server gets the same fields: X-Posta-Unsubscribe asks, and is removed', async () => {
  const rcpt = 'cron-reader@dest.test';
  await sendmailDigest(rcpt);
  await digestArrived(rcpt);
});

test('posta sendmail with no server running queues the message with the same fields, and its link unsubscribes once the server is back', async () => {
  const rcpt = 'offline-reader@dest.test';
  await s.stop();
  try {
    await sendmailDigest(rcpt);
  } finally {
    await s.restart();
  }
  const m = await digestArrived(rcpt);
  const post = await curl(['-d', 'List-Unsubscribe=One-Click', links(m).url]);
  assert.equal(post.out.trim(), '200', post.out);
  assert.equal(await suppressedAs(rcpt), 'UNSUBSCRIBE');
});
