/**
 * The SES APIs as boto3 calls them (Debian's python3-boto3, through
 * test/peers/ses_boto3.py): SES v2 (sesv2) and v1 (ses) clients with only
 * endpoint_url, region and credentials changed, against a real `posta serve`
 * on loopback that delivers to a receiving MX; each message that arrives is
 * checked by dkimpy. Errors must reach botocore as the codes (and, for v1,
 * the modeled exception classes) real SES gives.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { posta } from '../helpers/posta.ts';
import { boto3 as boto3Call, type Reply } from '../helpers/boto3.ts';
import { dkimpy, SOA, startDns, type DnsServer } from '../helpers/dns.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let dkimDns: DnsServer;
let s: TestServer;
let key: { id: string; secret: string };

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ http: true, dns: mx.dns.endpoint });
  const made = await posta([
    'key',
    'create',
    '--domain',
    'example.test',
    '--rate',
    '100',
    '--json',
    '--dir',
    s.dir,
  ]);
  assert.equal(made.code, 0, made.stderr);
  const k = JSON.parse(made.stdout) as { access_key_id: string; secret_access_key: string };
  key = { id: k.access_key_id, secret: k.secret_access_key };
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  assert.equal(records.code, 0, records.stderr);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

/** One boto3 call against this test's server, with its key unless `creds` says otherwise. */
function boto3(
  service: 'ses' | 'sesv2',
  op: string,
  kwargs: unknown,
  creds: { id: string; secret: string } = key,
): Promise<Reply> {
  return boto3Call(`http://${s.host}:${s.ports.http}`, creds, service, op, kwargs);
}

function ok(r: Reply): NonNullable<Reply['ok']> {
  assert.equal(r.error, undefined, JSON.stringify(r.error));
  assert.ok(r.ok);
  return r.ok;
}

const raw = (to: string, subject: string) => ({
  __bytes__:
    `From: Posta Test <${s.user}>\r\nTo: ${to}\r\nSubject: ${subject}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\n\r\nHello from boto3: ${subject}.\r\n`,
});

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

/** The message for `address` at the MX, its DKIM signatures (Ed25519 and RSA) valid. */
async function arrived(address: string, messageId: string): Promise<ReceivedMessage> {
  const m = await mx.rx.arrival(to(address), `for ${address}`);
  assert.equal(m.mailFrom, s.user);
  assert.ok(m.data.toString().includes(` id ${messageId};`), 'Received names the MessageId');
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /0 d=example\.test a=ed25519-sha256 ok/);
  assert.match(v.out, /1 d=example\.test a=rsa-sha256 ok/);
  return m;
}

/** The header block of a message. */
const head = (m: ReceivedMessage) => m.data.toString().split('\r\n\r\n')[0] ?? '';

test('sesv2 send_email Raw: MessageId and RequestId, delivered with valid DKIM', async () => {
  const r = await boto3('sesv2', 'send_email', {
    Destination: { ToAddresses: ['raw-v2@dest.test'] },
    Content: { Raw: { Data: raw('raw-v2@dest.test', 'sesv2 raw') } },
  });
  const id = ok(r).MessageId as string;
  assert.match(id, /\S/);
  assert.match(ok(r).ResponseMetadata.RequestId, /\S/);
  await arrived('raw-v2@dest.test', id);
  // botocore signs Host as the URL's authority, with the port when it is not
  // 80 (what a proxy must pass on: nginx $http_host, not $host).
  assert.notEqual(s.ports.http, 80);
  assert.equal(r.signed?.host, `${s.host}:${s.ports.http}`);
  assert.match(r.signed?.signed_headers ?? '', /(^|;)host(;|$)/);
});

test('sesv2 send_email Simple with Cc and Bcc: Bcc only in the envelope', async () => {
  const r = await boto3('sesv2', 'send_email', {
    FromEmailAddress: `Posta Test <${s.user}>`,
    Destination: {
      ToAddresses: ['simple-to@dest.test'],
      CcAddresses: ['simple-cc@dest.test'],
      BccAddresses: ['simple-bcc@dest.test'],
    },
    Content: {
      Simple: {
        Subject: { Data: 'sesv2 simple', Charset: 'UTF-8' },
        Body: {
          Text: { Data: 'Plain text from boto3.', Charset: 'UTF-8' },
          Html: { Data: '<p>HTML from boto3.</p>', Charset: 'UTF-8' },
        },
      },
    },
  });
  const id = ok(r).MessageId as string;
  assert.match(ok(r).ResponseMetadata.RequestId, /\S/);
  const m = await arrived('simple-bcc@dest.test', id);
  assert.deepEqual(
    [...m.rcptTos].sort(),
    ['simple-bcc@dest.test', 'simple-cc@dest.test', 'simple-to@dest.test'],
    'one transaction for all three',
  );
  assert.doesNotMatch(head(m), /^Bcc:/im);
  assert.doesNotMatch(m.data.toString(), /simple-bcc/);
  assert.match(head(m), /^To: simple-to@dest\.test$/im);
  assert.match(head(m), /^Cc: simple-cc@dest\.test$/im);
  assert.match(head(m), /^Subject: sesv2 simple$/im);
  assert.match(m.data.toString(), /Plain text from boto3\./);
  assert.match(m.data.toString(), /<p>HTML from boto3\.<\/p>/);
});

test("sesv2 get_account: the key's SendQuota, as floats", async () => {
  const r = await boto3('sesv2', 'get_account', {});
  const a = ok(r) as unknown as {
    SendQuota: { Max24HourSend: number; MaxSendRate: number; SentLast24Hours: number };
    SendingEnabled: boolean;
  };
  assert.equal(a.SendQuota.Max24HourSend, 50_000);
  assert.equal(a.SendQuota.MaxSendRate, 100);
  assert.ok(a.SendQuota.SentLast24Hours >= 0);
  assert.equal(a.SendingEnabled, true);
  assert.deepEqual(r.types?.SendQuota, {
    Max24HourSend: 'float',
    MaxSendRate: 'float',
    SentLast24Hours: 'float',
  });
});

test('ses (v1) send_raw_email: delivered with valid DKIM', async () => {
  const r = await boto3('ses', 'send_raw_email', {
    Source: s.user,
    Destinations: ['raw-v1@dest.test'],
    RawMessage: { Data: raw('raw-v1@dest.test', 'ses raw') },
  });
  const id = ok(r).MessageId as string;
  assert.match(id, /\S/);
  assert.match(ok(r).ResponseMetadata.RequestId, /\S/);
  await arrived('raw-v1@dest.test', id);
});

test('ses (v1) send_email with Bcc: delivered with valid DKIM, Bcc only in the envelope', async () => {
  const r = await boto3('ses', 'send_email', {
    Source: `Posta Test <${s.user}>`,
    Destination: { ToAddresses: ['simple-v1@dest.test'], BccAddresses: ['bcc-v1@dest.test'] },
    Message: {
      Subject: { Data: 'ses simple' },
      Body: { Text: { Data: 'Plain text from boto3 v1.' } },
    },
  });
  const id = ok(r).MessageId as string;
  assert.match(ok(r).ResponseMetadata.RequestId, /\S/);
  const m = await arrived('bcc-v1@dest.test', id);
  assert.deepEqual([...m.rcptTos].sort(), ['bcc-v1@dest.test', 'simple-v1@dest.test']);
  assert.doesNotMatch(m.data.toString(), /bcc-v1/);
  assert.match(m.data.toString(), /Plain text from boto3 v1\./);
});

test('ses (v1) get_send_quota: Max24HourSend, MaxSendRate, SentLast24Hours as floats', async () => {
  const r = await boto3('ses', 'get_send_quota', {});
  const q = ok(r);
  assert.equal(q.Max24HourSend, 50_000);
  assert.equal(q.MaxSendRate, 100);
  assert.ok((q.SentLast24Hours as number) >= 1, 'the messages sent above count');
  assert.equal(r.types?.Max24HourSend, 'float');
  assert.equal(r.types?.MaxSendRate, 'float');
  assert.equal(r.types?.SentLast24Hours, 'float');
});

// Errors: what botocore makes of posta's answer. Every request carries a
// From of other.test, which the key may not use: with good credentials that
// is MessageRejected, and nothing is ever delivered. "modeled": the class
// raised is client.exceptions.<Code> (botocore maps v1 classes by the model's
// error code, so this needs <Code>MessageRejected</Code> exactly).
type Creds = 'the key' | 'a wrong secret' | 'an unknown key id';
const credentials: Record<Creds, () => { id: string; secret: string }> = {
  'the key': () => key,
  'a wrong secret': () => ({ id: key.id, secret: `${key.secret.slice(0, -1)}#` }),
  'an unknown key id': () => ({ id: 'AKPSAAAAAAAAAAAAAAAA', secret: key.secret }),
};
const notOurs = () => ({
  __bytes__: raw('x@dest.test', 'not ours').__bytes__.replace(s.user, 'a@other.test'),
});
const call: Record<'sesv2' | 'ses', () => [op: string, kwargs: unknown]> = {
  sesv2: () => [
    'send_email',
    { Destination: { ToAddresses: ['x@dest.test'] }, Content: { Raw: { Data: notOurs() } } },
  ],
  ses: () => ['send_raw_email', { RawMessage: { Data: notOurs() } }],
};
const errors: [Creds, 'sesv2' | 'ses', code: string, status: number, modeled: boolean][] = [
  ['the key', 'sesv2', 'MessageRejected', 400, true],
  ['the key', 'ses', 'MessageRejected', 400, true],
  ['a wrong secret', 'sesv2', 'InvalidSignatureException', 403, false],
  ['a wrong secret', 'ses', 'SignatureDoesNotMatch', 403, false],
  ['an unknown key id', 'sesv2', 'UnrecognizedClientException', 403, false],
  ['an unknown key id', 'ses', 'InvalidClientTokenId', 403, false],
];

for (const [creds, service, code, status, modeled] of errors) {
  test(`${service}: From of another domain with ${creds} -> ClientError ${code}`, async () => {
    const [op, kwargs] = call[service]();
    const from = s.logs.length;
    const r = await boto3(service, op, kwargs, credentials[creds]());
    assert.ok(r.error, `expected an error, got ${JSON.stringify(r.ok)}`);
    assert.equal(r.error.code, code, r.error.message);
    assert.equal(r.error.status, status);
    assert.match(r.error.message, /\S/);
    assert.match(r.error.request_id, /\S/);
    if (modeled) {
      assert.equal(r.error.class, code);
      assert.equal(r.error.modeled, true, `client.exceptions.${code} is the class raised`);
    }
    const queued = s.logs.slice(from).filter((l) => l.includes('"msg":"API send queued"'));
    assert.deepEqual(queued, [], 'nothing was queued');
  });
}
