/**
 * Webhooks end to end: a real `posta serve` with two [webhooks.NAME]
 * endpoints on an HTTP receiver of the test's, one in the SNS envelope and
 * one in posta's own format. Mail sent through the SES v2 API (the JS SDK)
 * to a real MX turns into Send, Delivery and Bounce notifications whose SES
 * fields match SES's documented shape, with SNS signatures that verify
 * against the certificate posta serves at SigningCertURL (SignatureVersion
 * 1, SHA1withRSA, as AWS documents the check) and an HMAC that verifies with
 * `posta webhooks secret`; an event owed when posta is killed (-9) arrives
 * after the restart.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { SESv2Client, SendEmailCommand } from '@aws-sdk/client-sesv2';
import { posta } from '../helpers/posta.ts';
import { freePort, randomLoopback } from '../helpers/net.ts';
import { startMxFor } from '../helpers/receiver.ts';
import { startServer, type TestServer } from '../helpers/server.ts';

interface Hit {
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

let mx: Awaited<ReturnType<typeof startMxFor>>;
let s: TestServer;
let client: SESv2Client;
let hooks: Server;
const hits: Hit[] = [];
/** Paths the receiver answers 500 to, for now. */
const failing = new Set<string>();

before(async () => {
  mx = await startMxFor('dest.test');
  const host = randomLoopback();
  const port = await freePort(host);
  hooks = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      hits.push({ path, headers: req.headers, body });
      res.writeHead(failing.has(path) ? 500 : 200).end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(port, host, resolve));
  s = await startServer({
    http: true,
    https: true,
    dns: mx.dns.endpoint,
    extraToml: [
      '[webhooks.sns]',
      `url = "http://${host}:${port}/sns"`,
      '[webhooks.own]',
      `url = "http://${host}:${port}/own"`,
      'format = "posta"',
      'events = ["Delivery", "Bounce"]',
    ].join('\n'),
  });
  const made = await posta(['key', 'create', '--domain', 'example.test', '--json', '--dir', s.dir]);
  assert.equal(made.code, 0, made.stderr);
  const k = JSON.parse(made.stdout) as { access_key_id: string; secret_access_key: string };
  client = new SESv2Client({
    endpoint: `http://${s.host}:${s.ports.http}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: k.access_key_id, secretAccessKey: k.secret_access_key },
  });
});

after(async () => {
  await s?.stop();
  await mx?.stop();
  await new Promise((resolve) => hooks?.close(resolve));
});

interface Sns {
  Type: string;
  MessageId: string;
  TopicArn: string;
  Subject?: string;
  Message: string;
  Timestamp: string;
  SignatureVersion: string;
  Signature: string;
  SigningCertURL: string;
  SubscribeURL?: string;
  Token?: string;
}

/** The certificate at SigningCertURL, fetched from posta's https listener (the URL names its hostname). */
async function signingCert(url: string): Promise<string> {
  const u = new URL(url);
  assert.equal(u.protocol, 'https:');
  assert.equal(u.hostname, 'mail.example.test');
  assert.match(u.pathname, /^\/sns\/SimpleNotificationService-[0-9a-f]+\.pem$/);
  const ca = await readFile(s.certFile);
  return new Promise((resolve, reject) => {
    request({ host: s.host, port: 443, path: u.pathname, servername: u.hostname, ca }, (res) => {
      let pem = '';
      res.on('data', (c: Buffer) => (pem += c.toString()));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(pem) : reject(new Error(`${res.statusCode}`)),
      );
    })
      .on('error', reject)
      .end();
  });
}

/** AWS's documented check of an SNS message signature (sns-verify-signature-of-message). */
async function snsSignatureValid(m: Sns): Promise<boolean> {
  const names =
    m.Type === 'Notification'
      ? ['Message', 'MessageId', 'Subject', 'Timestamp', 'TopicArn', 'Type']
      : ['Message', 'MessageId', 'SubscribeURL', 'Timestamp', 'Token', 'TopicArn', 'Type'];
  const fields = m as unknown as Record<string, string | undefined>;
  const text = names
    .filter((n) => fields[n] !== undefined)
    .map((n) => `${n}\n${fields[n]}\n`)
    .join('');
  const algorithm = m.SignatureVersion === '1' ? 'sha1' : 'sha256';
  return verify(
    algorithm,
    Buffer.from(text),
    await signingCert(m.SigningCertURL),
    Buffer.from(m.Signature, 'base64'),
  );
}

async function hitsUntil(pred: (h: Hit) => boolean, what: string, ms = 20_000): Promise<Hit[]> {
  for (let i = 0; i < ms / 100; i++) {
    const found = hits.filter(pred);
    if (found.length) return found;
    await sleep(100);
  }
  assert.fail(`no webhook call: ${what}`);
}

const snsFor = (id: string, type: string) => (h: Hit) => {
  if (h.path !== '/sns') return false;
  const m = JSON.parse(h.body) as Sns;
  if (m.Type !== 'Notification') return false;
  const e = JSON.parse(m.Message) as { eventType: string; mail: { messageId: string } };
  return e.mail.messageId === id && e.eventType === type;
};

async function send(to: string): Promise<string> {
  const out = await client.send(
    new SendEmailCommand({
      FromEmailAddress: 'ada@example.test',
      Destination: { ToAddresses: [to] },
      Content: { Simple: { Subject: { Data: `hooks ${to}` }, Body: { Text: { Data: 'x' } } } },
    }),
  );
  assert.ok(out.MessageId);
  return out.MessageId;
}

test('an SNS endpoint first gets a signed SubscriptionConfirmation; its SubscribeURL confirms it', async () => {
  const [hit] = await hitsUntil((h) => h.path === '/sns', 'the SubscriptionConfirmation');
  assert.ok(hit);
  assert.equal(hit.headers['x-amz-sns-message-type'], 'SubscriptionConfirmation');
  const m = JSON.parse(hit.body) as Sns;
  assert.equal(m.Type, 'SubscriptionConfirmation');
  assert.ok(m.Token);
  assert.ok(await snsSignatureValid(m), 'signature verifies');
  // the URL names posta's hostname; reach it on the http listener here
  const u = new URL(m.SubscribeURL ?? '');
  const res = await fetch(`http://${s.host}:${s.ports.http}${u.pathname}${u.search}`);
  assert.equal(res.status, 200);
  assert.match(await res.text(), /<ConfirmSubscriptionResponse/);
  const list = await posta(['webhooks', 'list', '--json', '--dir', s.dir]);
  const rows = (JSON.parse(list.stdout) as { webhooks: { name: string; confirmed?: boolean }[] })
    .webhooks;
  assert.equal(rows.find((r) => r.name === 'sns')?.confirmed, true);
});

test('Send, Delivery and Bounce reach the SNS endpoint in SES shape, signed; the posta endpoint gets its two types with a valid HMAC', async () => {
  const good = await send('hook-good@dest.test');
  const bad = await send('reject-hook@dest.test');
  for (const [id, type] of [
    [good, 'Send'],
    [good, 'Delivery'],
    [bad, 'Bounce'],
  ] as const) {
    const [hit] = await hitsUntil(snsFor(id, type), `${type} of ${id}`);
    assert.ok(hit);
    assert.equal(hit.headers['x-amz-sns-message-type'], 'Notification');
    assert.match(String(hit.headers['content-type']), /^text\/plain/);
    const m = JSON.parse(hit.body) as Sns;
    assert.equal(hit.headers['x-amz-sns-message-id'], m.MessageId);
    assert.equal(m.Subject, 'Amazon SES Email Event Notification');
    assert.equal(m.SignatureVersion, '1');
    assert.ok(await snsSignatureValid(m), `${type}: signature verifies`);
    const e = JSON.parse(m.Message) as {
      eventType: string;
      mail: {
        messageId: string;
        source: string;
        destination: string[];
        commonHeaders: { subject: string };
      };
      bounce?: {
        bounceType: string;
        bounceSubType: string;
        bouncedRecipients: { emailAddress: string; status: string }[];
      };
      delivery?: { recipients: string[] };
    };
    assert.equal(e.mail.source, 'ada@example.test');
    if (type === 'Bounce') {
      assert.equal(e.bounce?.bounceType, 'Permanent');
      assert.deepEqual(
        e.bounce?.bouncedRecipients.map((r) => [r.emailAddress, r.status]),
        [['reject-hook@dest.test', '5.1.1']],
      );
    }
    if (type === 'Delivery') assert.deepEqual(e.delivery?.recipients, ['hook-good@dest.test']);
  }
  // tampering is caught by the same check
  const [one] = await hitsUntil(snsFor(good, 'Delivery'), 'Delivery');
  const forged = { ...(JSON.parse(one?.body ?? '{}') as Sns) };
  forged.Message = forged.Message.replace('hook-good', 'hook-evil');
  assert.equal(await snsSignatureValid(forged), false);

  const secret = (await posta(['webhooks', 'secret', 'own', '--dir', s.dir])).stdout.trim();
  const own = await hitsUntil(
    (h) => h.path === '/own' && h.body.includes(bad),
    'posta-format Bounce',
  );
  const types = hits
    .filter((h) => h.path === '/own')
    .map((h) => (JSON.parse(h.body) as { eventType: string }).eventType);
  assert.ok(!types.includes('Send'), 'Send is not among its events');
  for (const h of own) {
    const sig = String(h.headers['posta-signature']);
    const [, t, v1] = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(sig) ?? [];
    assert.ok(t && v1, sig);
    assert.equal(createHmac('sha256', secret).update(`${t}.${h.body}`).digest('hex'), v1);
    assert.equal(h.headers['content-type'], 'application/json');
  }
});

test('an event owed when posta is killed -9 is delivered after the restart', async () => {
  failing.add('/own');
  const id = await send('hook-crash@dest.test');
  await hitsUntil((h) => h.path === '/own' && h.body.includes(id), 'the first, refused, call');
  const log = await posta(['webhooks', 'log', 'own', '--json', '--dir', s.dir]);
  assert.match(log.stdout, /"error": "HTTP 500"/);
  await s.stop('SIGKILL');
  failing.delete('/own');
  const before = hits.length;
  await s.restart();
  const after = await hitsUntil(
    (h) => hits.indexOf(h) >= before && h.path === '/own' && h.body.includes(id),
    'the owed Delivery after the restart',
    30_000,
  );
  const e = JSON.parse(after[0]?.body ?? '{}') as {
    eventType: string;
    mail: { messageId: string };
  };
  assert.equal(e.eventType, 'Delivery');
  assert.equal(e.mail.messageId, id);
});
