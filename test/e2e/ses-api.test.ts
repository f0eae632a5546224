/**
 * The SES APIs with the AWS SDK for JavaScript v3 (@aws-sdk/client-sesv2 and
 * @aws-sdk/client-ses), pointed at a real `posta serve` by its endpoint
 * alone: what they send arrives at an independent MX with both DKIM
 * signatures valid (dkimpy), Bcc only in the envelope; and each way a
 * request can be wrong gets the error class the SDK maps, or the retry it
 * makes (a skewed clock, throttling).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import {
  GetAccountCommand,
  GetEmailIdentityCommand,
  ListEmailIdentitiesCommand,
  SESv2Client,
  SendEmailCommand,
  type SESv2ClientConfig,
} from '@aws-sdk/client-sesv2';
import {
  GetIdentityVerificationAttributesCommand,
  GetSendQuotaCommand,
  GetSendStatisticsCommand,
  ListIdentitiesCommand,
  SESClient,
  VerifyDomainIdentityCommand,
  SendEmailCommand as V1SendEmailCommand,
  SendRawEmailCommand,
} from '@aws-sdk/client-ses';
import { posta } from '../helpers/posta.ts';
import { dkimpy, startDns, SOA, type DnsServer } from '../helpers/dns.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let dkimDns: DnsServer;
let s: TestServer;
let key: { access_key_id: string; secret_access_key: string };
let endpoint: string;

async function createKey(...flags: string[]): Promise<typeof key> {
  const r = await posta([
    'key',
    'create',
    '--domain',
    'example.test',
    '--json',
    ...flags,
    '--dir',
    s.dir,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as typeof key;
}

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ http: true, https: true, dns: mx.dns.endpoint });
  endpoint = `http://${s.host}:${s.ports.http}`;
  key = await createKey();
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
  // posta's own resolver publishes the DKIM records too, for the identities' status
  await mx.dns.update(
    [
      SOA('test'),
      'dest.test. IN MX 10 mx.dest.test.',
      `mx.dest.test. IN A ${mx.address}`,
      records.stdout,
    ].join('\n'),
  );
});

after(async () => {
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

function credentials(k = key) {
  return { accessKeyId: k.access_key_id, secretAccessKey: k.secret_access_key };
}

function v2(config: Partial<SESv2ClientConfig> = {}) {
  return new SESv2Client({ endpoint, region: 'eu-west-1', credentials: credentials(), ...config });
}

function v1() {
  return new SESClient({ endpoint, region: 'us-east-1', credentials: credentials() });
}

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

async function signaturesValid(m: ReceivedMessage): Promise<void> {
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.equal((m.data.toString().match(/^DKIM-Signature:/gim) ?? []).length, 2, 'RSA and Ed25519');
}

function raw(lines: string[]): Buffer {
  return Buffer.from(`${lines.join('\r\n')}\r\n`);
}

test('v2 SendEmail Raw: the MessageId is the queue id, X-SES-* headers are read and removed, both signatures verify at the MX', async () => {
  const out = await v2().send(
    new SendEmailCommand({
      Content: {
        Raw: {
          Data: raw([
            'From: Ada <ada@example.test>',
            'To: raw@dest.test',
            'Subject: raw through the SES v2 API',
            'X-SES-CONFIGURATION-SET: transactional',
            'X-SES-MESSAGE-TAGS: campaign=welcome, tier=free',
            '',
            'Hello from SendEmail.',
          ]),
        },
      },
    }),
  );
  assert.match(out.MessageId ?? '', /^[0-9a-z]{18}$/);
  assert.match(out.$metadata.requestId ?? '', /^[0-9a-f-]{36}$/);
  const m = await mx.rx.arrival(to('raw@dest.test'), 'the raw message');
  assert.equal(m.mailFrom, 'ada@example.test');
  assert.doesNotMatch(m.data.toString(), /^X-SES-/im);
  assert.match(m.data.toString(), /Hello from SendEmail\./);
  await signaturesValid(m);
  const shown = await posta(['queue', 'show', out.MessageId ?? '', '--json', '--dir', s.dir]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /"outcome": "delivered"/);
});

test('v2 SendEmail Simple: text, html and an attachment; Bcc only in the envelope; ReplyTo set', async () => {
  await v2().send(
    new SendEmailCommand({
      FromEmailAddress: 'Ada <ada@example.test>',
      Destination: {
        ToAddresses: ['simple@dest.test'],
        CcAddresses: ['cc@dest.test'],
        BccAddresses: ['hidden@dest.test'],
      },
      ReplyToAddresses: ['replies@example.test'],
      Content: {
        Simple: {
          Subject: { Data: 'Grüße from Simple' },
          Body: { Text: { Data: 'plain text' }, Html: { Data: '<p>html</p>' } },
          Headers: [{ Name: 'X-Campaign', Value: 'w1' }],
          Attachments: [
            {
              FileName: 'notes.txt',
              RawContent: Buffer.from('attached'),
              ContentType: 'text/plain',
            },
          ],
        },
      },
    }),
  );
  const m = await mx.rx.arrival(to('hidden@dest.test'), 'the Simple message');
  assert.deepEqual([...m.rcptTos].sort(), ['cc@dest.test', 'hidden@dest.test', 'simple@dest.test']);
  const text = m.data.toString();
  assert.doesNotMatch(text, /^Bcc:/im);
  assert.doesNotMatch(text, /hidden@dest\.test/);
  assert.match(text, /^Reply-To: replies@example\.test/im);
  assert.match(text, /^X-Campaign: w1/im);
  assert.match(text, /multipart\/alternative/);
  assert.match(text, /filename=notes\.txt/);
  assert.match(text, /^Subject: =\?UTF-8\?/im);
  await signaturesValid(m);
});

test('v1 SendRawEmail and SendEmail arrive, signed', async () => {
  const a = await v1().send(
    new SendRawEmailCommand({
      RawMessage: {
        Data: raw(['From: ada@example.test', 'To: v1raw@dest.test', 'Subject: v1', '', 'raw v1']),
      },
    }),
  );
  assert.ok(a.MessageId);
  const b = await v1().send(
    new V1SendEmailCommand({
      Source: 'ada@example.test',
      Destination: { ToAddresses: ['v1simple@dest.test'] },
      Message: { Subject: { Data: 'v1 simple' }, Body: { Text: { Data: 'v1 body' } } },
    }),
  );
  assert.ok(b.MessageId);
  for (const address of ['v1raw@dest.test', 'v1simple@dest.test']) {
    await signaturesValid(await mx.rx.arrival(to(address), address));
  }
});

test('GetAccount, GetSendQuota and posta status give the key limits and its use', async () => {
  const a = await v2().send(new GetAccountCommand({}));
  assert.equal(a.SendQuota?.MaxSendRate, 14);
  assert.equal(a.SendQuota?.Max24HourSend, 50000);
  assert.ok((a.SendQuota?.SentLast24Hours ?? 0) >= 1);
  assert.equal(a.SendingEnabled, true);
  const q = await v1().send(new GetSendQuotaCommand({}));
  assert.equal(q.MaxSendRate, 14);
  assert.equal(q.SentLast24Hours, a.SendQuota?.SentLast24Hours);
  const st = await posta(['status', '--json', '--dir', s.dir]);
  assert.equal(st.code, 0, st.stderr);
  const keys = (
    JSON.parse(st.stdout) as { keys: { id: string; sentLast24Hours: number; daily: number }[] }
  ).keys;
  const mine = keys.find((k) => k.id === key.access_key_id);
  assert.equal(mine?.sentLast24Hours, a.SendQuota?.SentLast24Hours);
  assert.equal(mine?.daily, 50000);
  const text = await posta(['status', '--dir', s.dir]);
  assert.match(text.stdout, new RegExp(`${key.access_key_id}  \\d+ of 50000 in 24 hours`));
});

test('a From the key may not use is MessageRejected; no recipient or too many is BadRequestException', async () => {
  const send = (lines: string[], dest?: string[]) =>
    v2().send(
      new SendEmailCommand({
        Content: { Raw: { Data: raw(lines) } },
        ...(dest ? { Destination: { ToAddresses: dest } } : {}),
      }),
    );
  await assert.rejects(send(['From: x@other.test', 'To: a@dest.test', '', 'x']), (e: Error) => {
    assert.equal(e.name, 'MessageRejected');
    assert.match(e.message, /not verified.*x@other\.test/);
    return true;
  });
  await assert.rejects(send(['From: ada@example.test', 'Subject: none', '', 'x']), {
    name: 'BadRequestException',
  });
  const many = Array.from({ length: 51 }, (_, i) => `r${i}@dest.test`);
  await assert.rejects(send(['From: ada@example.test', '', 'x'], many), {
    name: 'BadRequestException',
    message: 'Recipient count exceeds 50.',
  });
});

test('a wrong secret, an unknown key and a tampered body are refused with the codes SES gives', async () => {
  const wrong = v2({ credentials: { ...credentials(), secretAccessKey: 'wrong' } });
  await assert.rejects(wrong.send(new GetAccountCommand({})), {
    name: 'InvalidSignatureException',
  });
  const unknown = v2({
    credentials: { accessKeyId: 'AKPSAAAAAAAAAAAAAAAA', secretAccessKey: 'x' },
  });
  await assert.rejects(unknown.send(new GetAccountCommand({})), {
    name: 'UnrecognizedClientException',
  });
  const v1wrong = new SESClient({
    endpoint,
    region: 'us-east-1',
    credentials: { ...credentials(), secretAccessKey: 'wrong' },
  });
  await assert.rejects(v1wrong.send(new GetSendQuotaCommand({})), {
    name: 'SignatureDoesNotMatch',
  });

  // the body changed after it was signed (the deserialize step runs after signing)
  const tampering = v2();
  tampering.middlewareStack.add(
    (next) => (args) => {
      const req = (args as { request: { body: Uint8Array | string } }).request;
      // one letter of the base64 message, so the length (signed) stays
      req.body = Buffer.from(req.body).toString().replace('RnJvbT', 'rnJvbT');
      return next(args);
    },
    { step: 'deserialize', name: 'tamper' },
  );
  const sent = tampering.send(
    new SendEmailCommand({
      Content: {
        Raw: { Data: raw(['From: ada@example.test', 'To: t@dest.test', '', 'original']) },
      },
    }),
  );
  await assert.rejects(sent, { name: 'InvalidSignatureException' });
  const list = await posta(['queue', 'list', '--json', '--dir', s.dir]);
  assert.doesNotMatch(list.stdout, /t@dest\.test/, 'nothing was queued');
});

test('a clock 20 minutes fast: refused as not yet current, and the SDK takes the time from Date for its next request', async () => {
  const fast = v2({ systemClockOffset: 20 * 60_000, maxAttempts: 1 });
  await assert.rejects(fast.send(new GetAccountCommand({})), (e: Error) => {
    assert.equal(e.name, 'InvalidSignatureException');
    assert.match(e.message, /Signature not yet current/);
    return true;
  });
  // The SDK retries at once only when the corrected offset itself is large
  // (a machine whose clock is off); here the offset was the client's own
  // setting, so the correction shows on the next request.
  assert.ok(Math.abs(fast.config.systemClockOffset ?? 0) < 60_000, 'offset taken from Date');
  const r = await fast.send(new GetAccountCommand({}));
  assert.equal(r.SendingEnabled, true);
});

test('over the send rate: TooManyRequestsException, which the SDK retries until it passes', async () => {
  const slow = await createKey('--rate', '1');
  const client = v2({ credentials: credentials(slow), maxAttempts: 10 });
  const results = await Promise.all(
    [1, 2, 3].map((n) =>
      client.send(
        new SendEmailCommand({
          Content: {
            Raw: { Data: raw(['From: ada@example.test', `To: rate${n}@dest.test`, '', `n=${n}`]) },
          },
        }),
      ),
    ),
  );
  assert.ok(
    results.some((r) => (r.$metadata.attempts ?? 1) > 1),
    'some were retried',
  );
  const once = v2({ credentials: credentials(slow), maxAttempts: 1 });
  const burst = await Promise.allSettled([4, 5].map(() => once.send(new GetAccountCommand({}))));
  assert.ok(
    burst.every((b) => b.status === 'fulfilled'),
    'reading the account takes no quota',
  );
  const refused = await once
    .send(
      new SendEmailCommand({
        Content: { Raw: { Data: raw(['From: ada@example.test', 'To: rate9@dest.test', '', 'x']) } },
      }),
    )
    .then(() =>
      once.send(
        new SendEmailCommand({
          Content: {
            Raw: { Data: raw(['From: ada@example.test', 'To: rate10@dest.test', '', 'x']) },
          },
        }),
      ),
    )
    .catch((e: Error) => e);
  assert.ok(refused instanceof Error, 'two sends within a second at rate 1: the second refused');
  assert.equal(refused.name, 'TooManyRequestsException');
  assert.equal(refused.message, 'Maximum sending rate exceeded.');
});

test('a revoked key stops working at once', async () => {
  const k = await createKey();
  const client = v2({ credentials: credentials(k) });
  await client.send(new GetAccountCommand({}));
  const r = await posta(['key', 'revoke', k.access_key_id, '--dir', s.dir]);
  assert.equal(r.code, 0, r.stderr);
  await assert.rejects(client.send(new GetAccountCommand({})), {
    name: 'UnrecognizedClientException',
  });
});

test('the https listener serves the API with the SMTP certificate; an endpoint with a path prefix works', async () => {
  const ca = await readFile(s.certFile);
  const tls = v2({
    endpoint: `https://${s.host}`,
    requestHandler: { httpsAgent: new Agent({ ca, servername: 'mail.example.test' }) },
  });
  const a = await tls.send(new GetAccountCommand({}));
  assert.equal(a.SendingEnabled, true);
  const prefixed = v2({ endpoint: `${endpoint}/ses-proxy` });
  const out = await prefixed.send(
    new SendEmailCommand({
      Content: { Raw: { Data: raw(['From: ada@example.test', 'To: prefix@dest.test', '', 'p']) } },
    }),
  );
  assert.ok(out.MessageId);
});

test("identities: the key's domains, with the DKIM status DNS publishes (v2), verified (v1); others are not found", async () => {
  const list = await v2().send(new ListEmailIdentitiesCommand({}));
  assert.deepEqual(
    list.EmailIdentities?.map((i) => [i.IdentityName, i.IdentityType, i.VerificationStatus]),
    [['example.test', 'DOMAIN', 'SUCCESS']],
  );
  const one = await v2().send(new GetEmailIdentityCommand({ EmailIdentity: 'example.test' }));
  assert.equal(one.DkimAttributes?.Status, 'SUCCESS');
  assert.equal(one.DkimAttributes?.SigningAttributesOrigin, 'EXTERNAL');
  assert.equal(one.DkimAttributes?.CurrentSigningKeyLength, 'RSA_2048_BIT');
  assert.equal(one.DkimAttributes?.Tokens?.length, 2, 'the RSA and Ed25519 selectors');
  assert.equal(one.VerifiedForSendingStatus, true);
  const address = await v2().send(
    new GetEmailIdentityCommand({ EmailIdentity: 'ada@example.test' }),
  );
  assert.equal(address.IdentityType, 'EMAIL_ADDRESS');
  await assert.rejects(v2().send(new GetEmailIdentityCommand({ EmailIdentity: 'other.test' })), {
    name: 'NotFoundException',
  });

  const ids = await v1().send(new ListIdentitiesCommand({}));
  assert.deepEqual(ids.Identities, ['example.test']);
  const attrs = await v1().send(
    new GetIdentityVerificationAttributesCommand({ Identities: ['example.test', 'other.test'] }),
  );
  assert.deepEqual(Object.keys(attrs.VerificationAttributes ?? {}), ['example.test']);
  assert.equal(attrs.VerificationAttributes?.['example.test']?.VerificationStatus, 'Success');
  const token = await v1().send(new VerifyDomainIdentityCommand({ Domain: 'example.test' }));
  assert.ok(token.VerificationToken);
  await assert.rejects(v1().send(new VerifyDomainIdentityCommand({ Domain: 'other.test' })), {
    name: 'InvalidParameterValue',
  });
});

test('GetSendStatistics counts what the key sent in 15-minute points', async () => {
  const stats = await v1().send(new GetSendStatisticsCommand({}));
  const points = stats.SendDataPoints ?? [];
  assert.ok(points.length >= 1);
  const attempts = points.reduce((n, p) => n + (p.DeliveryAttempts ?? 0), 0);
  assert.ok(attempts >= 5, `${attempts} delivery attempts`);
  assert.ok(
    points.every((p) => p.Timestamp instanceof Date && p.Timestamp.getTime() % 900_000 === 0),
  );
});

test('Simple Headers cannot inject fields or replace the ones the API sets', async () => {
  const simple = (headers: { Name: string; Value: string }[]) =>
    v2().send(
      new SendEmailCommand({
        FromEmailAddress: 'ada@example.test',
        Destination: { ToAddresses: ['inject@dest.test'] },
        Content: {
          Simple: {
            Subject: { Data: 'x' },
            Body: { Text: { Data: 'x' } },
            Headers: headers,
          },
        },
      }),
    );
  await assert.rejects(simple([{ Name: 'X-A', Value: 'x\r\nBcc: evil@dest.test' }]), {
    name: 'BadRequestException',
  });
  await assert.rejects(simple([{ Name: 'From', Value: 'ceo@example.test' }]), {
    name: 'BadRequestException',
  });
  await assert.rejects(simple([{ Name: 'Bad Name', Value: 'x' }]), {
    name: 'BadRequestException',
  });
  const list = await posta(['queue', 'list', '--json', '--dir', s.dir]);
  assert.doesNotMatch(list.stdout, /inject@dest\.test|evil@dest\.test/);
});

test('Raw with FromEmailAddress and ReplyToAddresses: they replace From and Reply-To, unless the same addresses are there', async () => {
  await v2().send(
    new SendEmailCommand({
      FromEmailAddress: 'Grace Hopper <grace@example.test>',
      ReplyToAddresses: ['desk@example.test'],
      Destination: { ToAddresses: ['replaced@dest.test'] },
      Content: {
        Raw: {
          Data: raw([
            'From: Ada <ada@example.test>',
            'Reply-To: old@example.test',
            'To: replaced@dest.test',
            'Subject: replaced',
            '',
            'x',
          ]),
        },
      },
    }),
  );
  const m = await mx.rx.arrival(to('replaced@dest.test'), 'the replaced message');
  const head = m.data.toString().split('\r\n\r\n')[0] ?? '';
  assert.match(head, /^From: "Grace Hopper" <grace@example\.test>$/m);
  assert.match(head, /^Reply-To: <desk@example\.test>$/m);
  assert.doesNotMatch(head, /ada@example\.test|old@example\.test/);
  assert.equal(m.mailFrom, 'grace@example.test');
  await signaturesValid(m);

  // the same address (nodemailer sends the From it wrote): the field stays as written
  await v2().send(
    new SendEmailCommand({
      FromEmailAddress: 'ada@example.test',
      Destination: { ToAddresses: ['kept@dest.test'] },
      Content: {
        Raw: {
          Data: raw(['From: =?UTF-8?Q?Ad=C3=A1?= <ada@example.test>', 'Subject: kept', '', 'x']),
        },
      },
    }),
  );
  const k = await mx.rx.arrival(to('kept@dest.test'), 'the kept message');
  assert.match(k.data.toString(), /^From: =\?UTF-8\?Q\?Ad=C3=A1\?= <ada@example\.test>$/m);
});
