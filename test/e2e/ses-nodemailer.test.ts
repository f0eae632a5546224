/**
 * nodemailer's SES transport (nodemailer >= 7: SES v2 SendEmail with Raw
 * content, through @aws-sdk/client-sesv2) with only the client's endpoint
 * and credentials changed, against a real `posta serve` on loopback that
 * delivers to a receiving MX; the message that arrives is checked by dkimpy.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { posta } from '../helpers/posta.ts';
import { dkimpy, SOA, startDns, type DnsServer } from '../helpers/dns.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

const REGION = 'eu-west-1';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let dkimDns: DnsServer;
let s: TestServer;
let ses: SESv2Client;

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ http: true, dns: mx.dns.endpoint });
  const made = await posta(['key', 'create', '--domain', 'example.test', '--json', '--dir', s.dir]);
  assert.equal(made.code, 0, made.stderr);
  const key = JSON.parse(made.stdout) as { access_key_id: string; secret_access_key: string };
  ses = new SESv2Client({
    endpoint: `http://${s.host}:${s.ports.http}`,
    region: REGION,
    credentials: { accessKeyId: key.access_key_id, secretAccessKey: key.secret_access_key },
    maxAttempts: 1,
  });
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  assert.equal(records.code, 0, records.stderr);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  ses?.destroy();
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

const transporter = () => nodemailer.createTransport({ SES: { sesClient: ses, SendEmailCommand } });

test('text, html, an attachment, Cc and Bcc: delivered with Bcc only in the envelope, both DKIM signatures valid', async () => {
  const from = s.logs.length;
  const info = await transporter().sendMail({
    from: `Posta Test <${s.user}>`,
    to: 'nm-to@dest.test',
    cc: 'nm-cc@dest.test',
    bcc: 'nm-bcc@dest.test',
    subject: 'nodemailer over SES',
    text: 'Plain text from nodemailer.',
    html: '<p>HTML from <b>nodemailer</b>.</p>',
    attachments: [{ filename: 'hello.txt', content: 'attached text\n', contentType: 'text/plain' }],
  });
  // info.response is SES's MessageId; nodemailer builds info.messageId from it.
  const id = info.response;
  assert.match(id, /\S/);
  assert.equal(info.messageId, `<${id}@${REGION}.amazonses.com>`);
  assert.deepEqual([...info.envelope.to].sort(), [
    'nm-bcc@dest.test',
    'nm-cc@dest.test',
    'nm-to@dest.test',
  ]);
  // and it is the id posta queued the message under
  const queued = await s.logged(from, '"msg":"API send queued"');
  assert.equal(queued.length, 1, queued.join('\n'));
  assert.equal((JSON.parse(queued[0] ?? '{}') as { qid?: string }).qid, id);

  const m = await mx.rx.arrival((x) => x.rcptTos.includes('nm-bcc@dest.test'), 'for nm-bcc');
  assert.equal(m.mailFrom, s.user);
  assert.deepEqual([...m.rcptTos].sort(), [
    'nm-bcc@dest.test',
    'nm-cc@dest.test',
    'nm-to@dest.test',
  ]);
  const text = m.data.toString();
  const head = text.split('\r\n\r\n')[0] ?? '';
  assert.ok(head.includes(` id ${id};`), 'Received names the MessageId');
  assert.doesNotMatch(head, /^Bcc:/im);
  assert.doesNotMatch(text, /nm-bcc/);
  assert.match(head, /^To: nm-to@dest\.test$/im);
  assert.match(head, /^Cc: nm-cc@dest\.test$/im);
  assert.match(head, /^Content-Type: multipart\/mixed;/im);
  assert.match(text, /Plain text from nodemailer\./);
  assert.match(text, /<p>HTML from <b>nodemailer<\/b>\.<\/p>/);
  assert.match(text, /filename=hello\.txt/);
  assert.ok(text.includes(Buffer.from('attached text\n').toString('base64')), 'the attachment');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /0 d=example\.test a=ed25519-sha256 ok/);
  assert.match(v.out, /1 d=example\.test a=rsa-sha256 ok/);

  // `posta queue show` knows the message by that id: one delivery per recipient
  // (recorded once the MX's 250 is in, so wait for it a little).
  let delivered: string[] = [];
  for (let i = 0; i < 100 && delivered.length < 3; i++) {
    if (i) await sleep(100);
    const shown = await posta(['queue', 'show', id, '--json', '--dir', s.dir]);
    assert.equal(shown.code, 0, shown.stderr);
    const log = JSON.parse(shown.stdout) as { attempts: { recipient: string; outcome: string }[] };
    delivered = log.attempts.filter((a) => a.outcome === 'delivered').map((a) => a.recipient);
  }
  assert.deepEqual(delivered.sort(), ['nm-bcc@dest.test', 'nm-cc@dest.test', 'nm-to@dest.test']);
});

test('transporter.verify() resolves: its probe from invalid@invalid gets MessageRejected', async () => {
  const from = s.logs.length;
  assert.equal(await transporter().verify(), true);
  // Why: the probe nodemailer sends (lib/ses-transport verify()), sent
  // as it is, is refused with MessageRejected, which verify() counts as
  // success; any other error would fail it.
  const probe = new SendEmailCommand({
    Content: {
      Raw: {
        Data: Buffer.from(
          'From: <invalid@invalid>\r\nTo: <invalid@invalid>\r\n Subject: Invalid\r\n\r\nInvalid',
        ),
      },
    },
    FromEmailAddress: 'invalid@invalid',
    Destination: { ToAddresses: ['invalid@invalid'] },
  });
  await assert.rejects(
    ses.send(probe),
    (err: Error & { $metadata?: { httpStatusCode?: number } }) => {
      assert.equal(err.name, 'MessageRejected', err.message);
      assert.equal(err.$metadata?.httpStatusCode, 400);
      return true;
    },
  );
  assert.deepEqual(
    s.logs.slice(from).filter((l) => l.includes('"msg":"API send queued"')),
    [],
    'nothing was queued',
  );
});
