/**
 * Events and the suppression list, end to end: mail sent through the SES v2
 * API (the AWS SDK for JavaScript) to a real MX gets Send and Delivery
 * events, a hard bounce gets a Permanent Bounce event and suppresses the
 * address, and the next message to it is accepted but never tried (a
 * Bounce of subtype OnAccountSuppressionList); the list is read and edited
 * through the API (the JS SDK and boto3) and `posta suppress`, and SMTP
 * submission obeys it too.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import {
  DeleteSuppressedDestinationCommand,
  GetSuppressedDestinationCommand,
  PutSuppressedDestinationCommand,
  SESv2Client,
  SendEmailCommand,
} from '@aws-sdk/client-sesv2';
import { posta } from '../helpers/posta.ts';
import { adminPage } from '../helpers/dashboard.ts';
import { eventsUntil as eventListUntil } from '../helpers/events.ts';
import { boto3 } from '../helpers/boto3.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';
import { SOA } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { submit } from '../helpers/smtp.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let s: TestServer;
let key: { id: string; secret: string };
let client: SESv2Client;

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ http: true, dns: mx.dns.endpoint });
  const made = await posta(['key', 'create', '--domain', 'example.test', '--json', '--dir', s.dir]);
  assert.equal(made.code, 0, made.stderr);
  const k = JSON.parse(made.stdout) as { access_key_id: string; secret_access_key: string };
  key = { id: k.access_key_id, secret: k.secret_access_key };
  client = new SESv2Client({
    endpoint: `http://${s.host}:${s.ports.http}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: key.id, secretAccessKey: key.secret },
  });
});

after(async () => {
  await s?.stop();
  await mx?.stop();
});

interface SesEvent {
  eventType: string;
  mail: {
    messageId: string;
    source: string;
    destination: string[];
    tags: Record<string, string[]>;
  };
  bounce?: {
    bounceType: string;
    bounceSubType: string;
    bouncedRecipients: { emailAddress: string; status: string; diagnosticCode: string }[];
  };
  delivery?: { recipients: string[]; smtpResponse: string };
}

const eventsUntil = (id: string, type: string) => eventListUntil<SesEvent>(s.dir, id, type);

async function send(to: string, tags = true): Promise<string> {
  const out = await client.send(
    new SendEmailCommand({
      FromEmailAddress: 'ada@example.test',
      Destination: { ToAddresses: [to] },
      Content: { Simple: { Subject: { Data: `to ${to}` }, Body: { Text: { Data: 'hello' } } } },
      ...(tags ? { EmailTags: [{ Name: 'campaign', Value: 'welcome' }] } : {}),
      ConfigurationSetName: 'transactional',
    }),
  );
  assert.ok(out.MessageId);
  return out.MessageId;
}

const rcptFor = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

test('a delivered message has Send then Delivery events, with the MessageId, destination and tags', async () => {
  const id = await send('good@dest.test');
  await mx.rx.arrival(rcptFor('good@dest.test'), 'the good message');
  const list = await eventsUntil(id, 'Delivery');
  assert.deepEqual(
    list.map((e) => e.eventType),
    ['Send', 'Delivery'],
  );
  for (const e of list) {
    assert.equal(e.mail.messageId, id);
    assert.equal(e.mail.source, 'ada@example.test');
    assert.deepEqual(e.mail.destination, ['good@dest.test']);
    assert.deepEqual(e.mail.tags, {
      campaign: ['welcome'],
      'ses:configuration-set': ['transactional'],
    });
  }
  assert.deepEqual(list[1]?.delivery?.recipients, ['good@dest.test']);
  assert.match(list[1]?.delivery?.smtpResponse ?? '', /^250 /);
});

test('a hard bounce is a Permanent Bounce and suppresses the address; the next send is never tried', async () => {
  const first = await send('reject-gone@dest.test');
  const bounced = (await eventsUntil(first, 'Bounce')).find((e) => e.eventType === 'Bounce');
  assert.equal(bounced?.bounce?.bounceType, 'Permanent');
  assert.equal(bounced?.bounce?.bounceSubType, 'NoEmail');
  assert.equal(bounced?.bounce?.bouncedRecipients[0]?.emailAddress, 'reject-gone@dest.test');
  assert.equal(bounced?.bounce?.bouncedRecipients[0]?.status, '5.1.1');

  const listed = await posta(['suppress', 'list', '--json', '--dir', s.dir]);
  const rows = JSON.parse(listed.stdout) as { address: string; reason: string; message: string }[];
  assert.deepEqual(
    rows.filter((r) => r.address === 'reject-gone@dest.test').map((r) => [r.reason, r.message]),
    [['BOUNCE', first]],
  );
  // boto3's ListSuppressedDestinations sees it
  const b = await boto3(
    `http://${s.host}:${s.ports.http}`,
    key,
    'sesv2',
    'list_suppressed_destinations',
    {},
  );
  assert.equal(b.error, undefined, JSON.stringify(b.error));
  const summaries = (
    b.ok as unknown as {
      SuppressedDestinationSummaries: { EmailAddress: string; Reason: string }[];
    }
  ).SuppressedDestinationSummaries;
  assert.ok(
    summaries.some((x) => x.EmailAddress === 'reject-gone@dest.test' && x.Reason === 'BOUNCE'),
  );

  const rcptsBefore = (await mx.rx.messages()).length;
  const connectionsBefore = (await mx.rx.connections()).length;
  const second = await send('reject-gone@dest.test');
  const again = (await eventsUntil(second, 'Bounce')).find((e) => e.eventType === 'Bounce');
  assert.equal(again?.bounce?.bounceType, 'Permanent');
  assert.equal(again?.bounce?.bounceSubType, 'OnAccountSuppressionList');
  const shown = await posta(['queue', 'show', second, '--json', '--dir', s.dir]);
  const attempts = (
    JSON.parse(shown.stdout) as { attempts: { reply: string; mx: string | null }[] }
  ).attempts;
  assert.equal(attempts.length, 1);
  assert.match(attempts[0]?.reply ?? '', /suppression list of example\.test/);
  assert.equal(attempts[0]?.mx ?? null, null, 'no MX was asked');
  await sleep(500);
  assert.equal((await mx.rx.connections()).length, connectionsBefore, 'no connection to the MX');
  assert.equal((await mx.rx.messages()).length, rcptsBefore);
});

test('PutSuppressedDestination, GetSuppressedDestination and DeleteSuppressedDestination through the JS SDK', async () => {
  await client.send(
    new PutSuppressedDestinationCommand({
      EmailAddress: 'Complainer@Dest.test',
      Reason: 'COMPLAINT',
    }),
  );
  const got = await client.send(
    new GetSuppressedDestinationCommand({ EmailAddress: 'complainer@dest.test' }),
  );
  assert.equal(got.SuppressedDestination?.Reason, 'COMPLAINT');
  assert.ok(got.SuppressedDestination?.LastUpdateTime instanceof Date);
  assert.ok(
    Math.abs((got.SuppressedDestination?.LastUpdateTime?.getTime() ?? 0) - Date.now()) < 60_000,
  );
  await client.send(
    new DeleteSuppressedDestinationCommand({ EmailAddress: 'complainer@dest.test' }),
  );
  await assert.rejects(
    client.send(new GetSuppressedDestinationCommand({ EmailAddress: 'complainer@dest.test' })),
    { name: 'NotFoundException' },
  );
  await assert.rejects(
    client.send(
      new PutSuppressedDestinationCommand({
        EmailAddress: 'x@dest.test',
        Reason: 'SPAM' as 'BOUNCE',
      }),
    ),
    { name: 'BadRequestException' },
  );
});

test('SMTP submission obeys the list too: a suppressed recipient gets no delivery, the others do', async () => {
  const added = await posta([
    'suppress',
    'add',
    'blocked@dest.test',
    '--domain',
    'example.test',
    '--dir',
    s.dir,
  ]);
  assert.equal(added.code, 0, added.stderr);
  const id = await submit(s, 'blocked@dest.test, open@dest.test', 'smtp and the list');
  await mx.rx.arrival(rcptFor('open@dest.test'), 'the unsuppressed recipient');
  const list = await eventsUntil(id, 'Bounce');
  const bounce = list.find((e) => e.eventType === 'Bounce');
  assert.equal(bounce?.bounce?.bounceSubType, 'OnAccountSuppressionList');
  const all = await mx.rx.messages();
  assert.ok(!all.some((m) => m.rcptTos.includes('blocked@dest.test')));
  const del = await posta([
    'suppress',
    'del',
    'blocked@dest.test',
    '--domain',
    'example.test',
    '--dir',
    s.dir,
  ]);
  assert.equal(del.code, 0, del.stderr);
  const listed = await posta(['suppress', 'list', '--dir', s.dir]);
  assert.doesNotMatch(listed.stdout, /blocked@dest\.test/);
});

/** An RFC 5965 report as a feedback loop sends it, about `original` (the message as it arrived). */
function arfReport(original: Buffer, recipient: string): string {
  return [
    'From: Feedback Loop <fbl@dest.test>',
    'To: abuse@example.test',
    'Subject: Email Feedback Report for IP 192.0.2.1',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report;',
    '\tboundary="fbl-boundary"',
    '',
    '--fbl-boundary',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    'This is an email abuse report for an email message received.',
    '',
    '--fbl-boundary',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: ExampleFBL/1.0',
    'Version: 1',
    'Original-Mail-From: <ada@example.test>',
    `Original-Rcpt-To: <${recipient}>`,
    'Arrival-Date: Wed, 02 Dec 2026 06:00:00 +0000',
    '',
    '--fbl-boundary',
    'Content-Type: message/rfc822',
    '',
    original.toString('latin1').replace(/\r\n$/, ''),
    '--fbl-boundary--',
    '',
  ].join('\r\n');
}

async function reportOnPort25(report: string, from = 'fbl@dest.test'): Promise<void> {
  const t = nodemailer.createTransport({
    host: s.host,
    port: s.ports.smtp,
    name: 'mx.dest.test',
    tls: { rejectUnauthorized: false },
  });
  try {
    const info = await t.sendMail({
      envelope: { from, to: ['abuse@example.test'] },
      raw: report,
    });
    assert.match(info.response, /^250 /);
  } finally {
    t.close();
  }
}

test('an ARF report about a message posta sent is a Complaint and suppresses the recipient; one about no such message does nothing', async () => {
  await s.reload(async () => {
    const r = await posta([
      'alias',
      'add',
      'abuse@example.test',
      'owner@dest.test',
      '--dir',
      s.dir,
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
  // dest.test's feedback loop sends from an address SPF authorises
  await mx.dns.update(
    [
      SOA('test'),
      'dest.test. IN MX 10 mx.dest.test.',
      `mx.dest.test. IN A ${mx.address}`,
      'dest.test. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
      '',
    ].join('\n'),
  );
  const id = await send('Complains@dest.test');
  const original = await mx.rx.arrival(
    rcptFor('Complains@dest.test'),
    'the message complained about',
  );
  // a co-recipient elsewhere (unverified, another domain) cannot complain for it
  let from = s.logs.length;
  await reportOnPort25(arfReport(original.data, 'complains@dest.test'), 'mallory@evil.test');
  assert.ok((await s.logged(from, 'feedback report not from a verified sender')).length);
  await reportOnPort25(arfReport(original.data, 'complains@dest.test'));
  const list = await eventsUntil(id, 'Complaint');
  const c = list.find((e) => e.eventType === 'Complaint') as SesEvent & {
    complaint?: {
      complainedRecipients: { emailAddress: string }[];
      complaintFeedbackType: string;
      userAgent: string;
    };
  };
  assert.deepEqual(c.complaint?.complainedRecipients, [{ emailAddress: 'Complains@dest.test' }]);
  assert.equal(c.complaint?.complaintFeedbackType, 'abuse');
  assert.equal(c.complaint?.userAgent, 'ExampleFBL/1.0');
  const listed = await posta([
    'suppress',
    'list',
    '--json',
    '--reason',
    'COMPLAINT',
    '--dir',
    s.dir,
  ]);
  const rows = JSON.parse(listed.stdout) as { address: string; message: string }[];
  assert.deepEqual(
    rows.map((r) => [r.address, r.message]),
    [['complains@dest.test', id]],
  );
  // a forged report: the same shape, a queue id posta never used
  const forged = Buffer.from(
    original.data.toString('latin1').replace(new RegExp(id, 'g'), '00aaaaaaaa00000000'),
    'latin1',
  );
  from = s.logs.length;
  await reportOnPort25(arfReport(forged, 'someone-else@dest.test'));
  assert.ok((await s.logged(from, 'feedback report about no message posta sent')).length);
  const after = await posta(['suppress', 'list', '--json', '--dir', s.dir]);
  assert.doesNotMatch(after.stdout, /someone-else/);
});

/**
 * A report as Yahoo's Complaint Feedback Loop sends them: from
 * arf.mail.yahoo.com, ARF Version 0.1, Received-Date, and only the header of
 * the reported message (text/rfc822-headers), here for an AOL user.
 */
function yahooReport(original: Buffer, recipient: string): string {
  const head = original.toString('latin1').split('\r\n\r\n', 1)[0] ?? '';
  return [
    'From: Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>',
    'To: abuse@example.test',
    'Subject: FW: to reader',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; boundary="----=_Part_1_2"; report-type=feedback-report',
    '',
    '------=_Part_1_2',
    'Content-Type: text/plain; charset=us-ascii',
    'Content-Transfer-Encoding: 7bit',
    '',
    'This is an email abuse report for an email message received from IP 192.0.2.1 on Thu, 03 Dec 2026 08:00:00 +0000',
    '',
    '------=_Part_1_2',
    'Content-Type: message/feedback-report',
    'Content-Transfer-Encoding: 7bit',
    '',
    'Feedback-Type: abuse',
    'User-Agent: Yahoo!-Mail-Feedback/2.0',
    'Version: 0.1',
    'Original-Mail-From: <ada@example.test>',
    `Original-Rcpt-To: ${recipient}`,
    'Received-Date: Thu, 03 Dec 2026 08:00:00 +0000',
    'Reported-Domain: example.test',
    'Authentication-Results: mta1000.mail.gq1.yahoo.com  from=example.test; dkim=pass (ok)',
    '',
    '------=_Part_1_2',
    'Content-Type: text/rfc822-headers',
    'Content-Transfer-Encoding: 7bit',
    '',
    head,
    '',
    '------=_Part_1_2--',
    '',
  ].join('\r\n');
}

test("Yahoo's feedback loop complains for an AOL user: a Complaint, a suppression, and a complaint rate past 0.3% in posta status and on the dashboard", async () => {
  // Yahoo's loop mails from arf.mail.yahoo.com, which SPF authorises; AOL's MX is the receiver
  await mx.dns.update(
    [
      SOA('test'),
      'dest.test. IN MX 10 mx.dest.test.',
      `mx.dest.test. IN A ${mx.address}`,
      'dest.test. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
      'aol.com. IN MX 10 mx.dest.test.',
      'arf.mail.yahoo.com. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"',
      '',
    ].join('\n'),
  );
  const id = await send('reader@aol.com');
  const original = await mx.rx.arrival(rcptFor('reader@aol.com'), 'the mail to the AOL user');
  await reportOnPort25(yahooReport(original.data, 'reader@aol.com'), 'feedback@arf.mail.yahoo.com');
  const list = await eventsUntil(id, 'Complaint');
  const c = list.find((e) => e.eventType === 'Complaint') as SesEvent & {
    complaint?: { complainedRecipients: { emailAddress: string }[]; userAgent: string };
  };
  assert.deepEqual(c.complaint?.complainedRecipients, [{ emailAddress: 'reader@aol.com' }]);
  assert.equal(c.complaint?.userAgent, 'Yahoo!-Mail-Feedback/2.0');
  const listed = await posta([
    'suppress',
    'list',
    '--json',
    '--reason',
    'COMPLAINT',
    '--dir',
    s.dir,
  ]);
  assert.ok(
    (JSON.parse(listed.stdout) as { address: string }[]).some(
      (r) => r.address === 'reader@aol.com',
    ),
    listed.stdout,
  );

  // a handful of deliveries and two complaints: far past Gmail's 0.3%
  const json = await posta(['status', '--json', '--dir', s.dir]);
  assert.equal(json.code, 0, json.stderr);
  const rates = (JSON.parse(json.stdout) as { complaints: Record<string, unknown>[] }).complaints;
  const ours = rates.find((r) => r.domain === 'example.test') as
    { delivered: number; complaints: number; rate: number; over: boolean } | undefined;
  assert.ok(ours, JSON.stringify(rates));
  assert.equal(ours.complaints, 2, 'this one and the feedback loop report of the test above');
  assert.ok(ours.delivered >= 3, JSON.stringify(ours));
  assert.equal(ours.rate, ours.complaints / ours.delivered);
  assert.equal(ours.over, true);
  const text = await posta(['status', '--dir', s.dir]);
  assert.match(
    text.stdout,
    new RegExp(
      `^  example\\.test +2 of ${ours.delivered} \\(${(200 / ours.delivered).toFixed(2).replace('.', '\\.')}%\\)  WARNING: at or past 0\\.30%`,
      'm',
    ),
  );

  // the dashboard's overview says the same, with the warning
  const page = await (await adminPage(s, '/')).text();
  assert.match(page, /<th scope="row">example\.test<\/th>\s*<td>\d+<\/td>\s*<td>2<\/td>/);
  assert.match(
    page,
    /role="alert">\s*<strong\s*>example\.test: [\d.]+% of its recipients reported its mail as spam\.<\/strong/,
  );
});
