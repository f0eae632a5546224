/**
 * SES templates end to end: the real AWS SDK clients (@aws-sdk/client-sesv2
 * and @aws-sdk/client-ses) against a real `posta serve` on loopback, signed
 * with a key from `posta key create`. Templates are created, listed,
 * updated and deleted through both APIs (one store); templated mail and
 * bulk mail are delivered to an independent MX (aiosmtpd), rendered as
 * Handlebars renders them, and their DKIM signatures verify with dkimpy.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CreateEmailTemplateCommand,
  DeleteEmailTemplateCommand,
  GetEmailTemplateCommand,
  ListEmailTemplatesCommand,
  SendBulkEmailCommand,
  SendEmailCommand,
  SESv2Client,
  TestRenderEmailTemplateCommand,
  UpdateEmailTemplateCommand,
} from '@aws-sdk/client-sesv2';
import {
  CreateTemplateCommand,
  DeleteTemplateCommand,
  GetTemplateCommand,
  ListTemplatesCommand,
  SendBulkTemplatedEmailCommand,
  SendTemplatedEmailCommand,
  SESClient,
  TestRenderTemplateCommand,
  UpdateTemplateCommand,
} from '@aws-sdk/client-ses';
import { posta } from '../helpers/posta.ts';
import { dkimpy, SOA, startDns, type DnsServer } from '../helpers/dns.ts';
import { startServer, type TestServer } from '../helpers/server.ts';
import { startMxFor, type ReceivedMessage } from '../helpers/receiver.ts';

let mx: Awaited<ReturnType<typeof startMxFor>>;
let dkimDns: DnsServer;
let s: TestServer;
let v2: SESv2Client;
let v1: SESClient;

before(async () => {
  mx = await startMxFor('dest.test');
  s = await startServer({ http: true, dns: mx.dns.endpoint });
  const created = await posta([
    'key',
    'create',
    '--domain',
    'example.test',
    '--rate',
    '1000',
    '--json',
    '--dir',
    s.dir,
  ]);
  assert.equal(created.code, 0, created.stderr);
  const key = JSON.parse(created.stdout) as { access_key_id: string; secret_access_key: string };
  const config = {
    endpoint: `http://${s.host}:${s.ports.http}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: key.access_key_id, secretAccessKey: key.secret_access_key },
    maxAttempts: 1,
  };
  v2 = new SESv2Client(config);
  v1 = new SESClient(config);
  const records = await posta(['dns', 'example.test', '--dir', s.dir]);
  assert.equal(records.code, 0, records.stderr);
  dkimDns = await startDns(`${SOA('example.test')}\n${records.stdout}`);
});

after(async () => {
  v2?.destroy();
  v1?.destroy();
  await s?.stop();
  await mx?.stop();
  dkimDns?.stop();
});

const to = (address: string) => (m: ReceivedMessage) => m.rcptTos.includes(address);

/** The message as text, folded header lines unfolded. */
const text = (m: ReceivedMessage) => m.data.toString('utf8').replace(/\r\n[ \t]+/g, ' ');

async function rejection(
  p: Promise<unknown>,
): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('the request succeeded');
}

async function assertSigned(m: ReceivedMessage): Promise<void> {
  const v = await dkimpy(dkimDns, 'dkimverify-all', m.data);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /0 d=example\.test a=ed25519-sha256 ok/);
  assert.match(v.out, /1 d=example\.test a=rsa-sha256 ok/);
}

test('v2: a template is created, read, updated, listed page by page and deleted', async () => {
  const content = { Subject: 'Hi {{name}}', Text: 'Text {{name}}', Html: '<p>{{name}}</p>' };
  await v2.send(
    new CreateEmailTemplateCommand({ TemplateName: 'crud-1', TemplateContent: content }),
  );
  const got = await v2.send(new GetEmailTemplateCommand({ TemplateName: 'crud-1' }));
  assert.equal(got.TemplateName, 'crud-1');
  assert.deepEqual(got.TemplateContent, content);

  const again = await rejection(
    v2.send(new CreateEmailTemplateCommand({ TemplateName: 'crud-1', TemplateContent: content })),
  );
  assert.equal(again.name, 'AlreadyExistsException');

  await v2.send(
    new UpdateEmailTemplateCommand({
      TemplateName: 'crud-1',
      TemplateContent: { Subject: 'Now {{name}}', Text: 'Only text' },
    }),
  );
  const updated = await v2.send(new GetEmailTemplateCommand({ TemplateName: 'crud-1' }));
  assert.deepEqual(updated.TemplateContent, { Subject: 'Now {{name}}', Text: 'Only text' });

  for (const name of ['crud-2', 'crud_3']) {
    await v2.send(new CreateEmailTemplateCommand({ TemplateName: name, TemplateContent: content }));
  }
  const names: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const page = await v2.send(new ListEmailTemplatesCommand({ PageSize: 1, NextToken: token }));
    pages++;
    for (const t of page.TemplatesMetadata ?? []) {
      names.push(t.TemplateName ?? '');
      assert.ok(t.CreatedTimestamp instanceof Date, 'CreatedTimestamp is a date');
      assert.ok(Math.abs(t.CreatedTimestamp.getTime() - Date.now()) < 60_000, 'and a recent one');
    }
    token = page.NextToken;
  } while (token && pages < 50);
  for (const name of ['crud-1', 'crud-2', 'crud_3']) assert.ok(names.includes(name), name);
  assert.ok(pages >= 3, `${pages} pages of one`);

  await v2.send(new DeleteEmailTemplateCommand({ TemplateName: 'crud-2' }));
  const gone = await rejection(v2.send(new GetEmailTemplateCommand({ TemplateName: 'crud-2' })));
  assert.equal(gone.name, 'NotFoundException');
  assert.equal(gone.$metadata?.httpStatusCode, 404);
  const twice = await rejection(
    v2.send(new DeleteEmailTemplateCommand({ TemplateName: 'crud-2' })),
  );
  assert.equal(twice.name, 'NotFoundException');
});

test('v2: invalid names, templates and data are BadRequestException', async () => {
  // each request is made when its turn comes: a rejection that came before
  // its await would be unhandled, and fail the test whatever it said
  const cases: [string, () => Promise<unknown>][] = [
    [
      'a name with a space',
      () =>
        v2.send(
          new CreateEmailTemplateCommand({ TemplateName: 'a b', TemplateContent: { Text: 'x' } }),
        ),
    ],
    [
      'a name over 64 characters',
      () =>
        v2.send(
          new CreateEmailTemplateCommand({
            TemplateName: 'n'.repeat(65),
            TemplateContent: { Text: 'x' },
          }),
        ),
    ],
    [
      'an unclosed block',
      () =>
        v2.send(
          new CreateEmailTemplateCommand({
            TemplateName: 'broken',
            TemplateContent: { Text: '{{#if x}}never closed' },
          }),
        ),
    ],
    [
      'a helper that does not exist',
      () =>
        v2.send(
          new CreateEmailTemplateCommand({
            TemplateName: 'helper',
            TemplateContent: { Text: '{{shout name}}' },
          }),
        ),
    ],
    [
      'TemplateData that is not JSON',
      () =>
        v2.send(new TestRenderEmailTemplateCommand({ TemplateName: 'crud-1', TemplateData: '{' })),
    ],
  ];
  for (const [what, p] of cases) {
    const err = await rejection(p());
    assert.equal(err.name, 'BadRequestException', `${what}: ${err.message}`);
  }
});

test('v2: TestRenderEmailTemplate gives the MIME text, the html escaped and the text not', async () => {
  await v2.send(
    new CreateEmailTemplateCommand({
      TemplateName: 'render',
      TemplateContent: {
        Subject: 'Order {{id}} for {{name}}',
        Text: 'Dear {{name}}, {{note}}',
        Html: '<p>{{note}}</p>',
      },
    }),
  );
  const r = await v2.send(
    new TestRenderEmailTemplateCommand({
      TemplateName: 'render',
      TemplateData: JSON.stringify({ id: 7, name: 'Ada', note: '<b>now</b>' }),
    }),
  );
  const mime = r.RenderedTemplate ?? '';
  assert.match(mime, /^Subject: Order 7 for Ada\r$/m);
  assert.match(mime, /^Content-Type: multipart\/alternative/m);
  assert.ok(mime.includes('Dear Ada, <b>now</b>'), mime);
  assert.ok(mime.includes('<p>&lt;b&gt;now&lt;/b&gt;</p>'), mime);
  assert.doesNotMatch(mime, /^(From|To):/m, 'nothing to address it from or to');
});

test('v2: SendEmail with a stored template arrives rendered and DKIM-signed', async () => {
  await v2.send(
    new CreateEmailTemplateCommand({
      TemplateName: 'welcome',
      TemplateContent: {
        Subject: 'Welcome, {{name}}',
        Text: 'Hello {{name}}, your code is {{code}}.',
        Html: '<h1>Hello {{name}}</h1><p>{{code}}</p>',
      },
    }),
  );
  const sent = await v2.send(
    new SendEmailCommand({
      FromEmailAddress: 'Shop <shop@example.test>',
      Destination: { ToAddresses: ['bob@dest.test'] },
      ReplyToAddresses: ['help@example.test'],
      Content: {
        Template: {
          TemplateName: 'welcome',
          TemplateData: JSON.stringify({ name: 'Bob', code: '<b>42</b>' }),
          Headers: [{ Name: 'X-Campaign', Value: 'spring' }],
        },
      },
    }),
  );
  assert.match(sent.MessageId ?? '', /^[0-9a-z]{18}$/);
  const m = await mx.rx.arrival(to('bob@dest.test'), 'the templated message for bob@dest.test');
  const t = text(m);
  assert.equal(m.mailFrom, 'shop@example.test');
  assert.match(t, /^Subject: Welcome, Bob\r$/m);
  assert.match(t, /^From: Shop <shop@example\.test>\r$/m);
  assert.match(t, /^Reply-To: help@example\.test\r$/m);
  assert.match(t, /^X-Campaign: spring\r$/m);
  assert.ok(t.includes('Hello Bob, your code is <b>42</b>.'), 'the text part is not escaped');
  assert.ok(t.includes('<h1>Hello Bob</h1><p>&lt;b&gt;42&lt;/b&gt;</p>'), 'the html part is');
  await assertSigned(m);
});

test('v2: SendEmail with inline TemplateContent arrives rendered', async () => {
  await v2.send(
    new SendEmailCommand({
      FromEmailAddress: 'shop@example.test',
      Destination: { ToAddresses: ['inline@dest.test'] },
      Content: {
        Template: {
          TemplateContent: { Subject: 'Inline {{n}}', Text: '{{#each items}}[{{this}}]{{/each}}' },
          TemplateData: JSON.stringify({ n: 1, items: ['a', 'b'] }),
        },
      },
    }),
  );
  const m = await mx.rx.arrival(to('inline@dest.test'), 'the inline-template message');
  assert.match(text(m), /^Subject: Inline 1\r$/m);
  assert.ok(text(m).includes('[a][b]'));
  await assertSigned(m);
});

test('v2: SendBulkEmail sends each entry with its own data; an invalid address fails only its entry', async () => {
  await v2.send(
    new CreateEmailTemplateCommand({
      TemplateName: 'bulk',
      TemplateContent: {
        Subject: '{{greeting}}, {{name}}',
        Text: '{{greeting}} {{name}}: {{item}}',
        Html: '<p>{{name}} {{item}}</p>',
      },
    }),
  );
  const entry = (address: string, data: object) => ({
    Destination: { ToAddresses: [address] },
    ReplacementEmailContent: {
      ReplacementTemplate: { ReplacementTemplateData: JSON.stringify(data) },
    },
  });
  const r = await v2.send(
    new SendBulkEmailCommand({
      FromEmailAddress: 'news@example.test',
      DefaultContent: {
        Template: {
          TemplateName: 'bulk',
          TemplateData: JSON.stringify({ greeting: 'Hello', name: 'friend', item: 'none' }),
        },
      },
      DefaultEmailTags: [{ Name: 'campaign', Value: 'may' }],
      BulkEmailEntries: [
        entry('carol@dest.test', { name: 'Carol', item: '<tea>' }),
        entry('not an address', { name: 'Nobody' }),
        {
          ...entry('dave@dest.test', { name: 'Dave', item: 'coffee', greeting: 'Hi' }),
          ReplacementTags: [{ Name: 'campaign', Value: 'june' }],
        },
      ],
    }),
  );
  const results = r.BulkEmailEntryResults ?? [];
  assert.deepEqual(
    results.map((e) => e.Status),
    ['SUCCESS', 'INVALID_PARAMETER', 'SUCCESS'],
  );
  assert.match(results[0]?.MessageId ?? '', /^[0-9a-z]{18}$/);
  assert.match(results[2]?.MessageId ?? '', /^[0-9a-z]{18}$/);
  assert.notEqual(results[0]?.MessageId, results[2]?.MessageId);
  assert.equal(results[1]?.MessageId, undefined);
  assert.match(results[1]?.Error ?? '', /Invalid email address/);

  const carol = await mx.rx.arrival(to('carol@dest.test'), 'the bulk message for carol');
  assert.deepEqual(carol.rcptTos, ['carol@dest.test'], 'one message per entry');
  assert.match(text(carol), /^Subject: Hello, Carol\r$/m);
  assert.ok(text(carol).includes('Hello Carol: <tea>'), 'default data under the entry data');
  assert.ok(text(carol).includes('<p>Carol &lt;tea&gt;</p>'));
  await assertSigned(carol);

  const dave = await mx.rx.arrival(to('dave@dest.test'), 'the bulk message for dave');
  assert.deepEqual(dave.rcptTos, ['dave@dest.test']);
  assert.match(text(dave), /^Subject: Hi, Dave\r$/m);
  assert.ok(text(dave).includes('Hi Dave: coffee'));
  assert.ok(!text(dave).includes('Carol'), "nothing of another entry's data");
  await assertSigned(dave);
});

test('v2: a missing template is NotFoundException, in SendEmail and SendBulkEmail alike', async () => {
  const send = await rejection(
    v2.send(
      new SendEmailCommand({
        FromEmailAddress: 'shop@example.test',
        Destination: { ToAddresses: ['nobody@dest.test'] },
        Content: { Template: { TemplateName: 'no-such-template', TemplateData: '{}' } },
      }),
    ),
  );
  assert.equal(send.name, 'NotFoundException');
  assert.equal(send.$metadata?.httpStatusCode, 404);
  const bulk = await rejection(
    v2.send(
      new SendBulkEmailCommand({
        FromEmailAddress: 'shop@example.test',
        DefaultContent: { Template: { TemplateName: 'no-such-template', TemplateData: '{}' } },
        BulkEmailEntries: [{ Destination: { ToAddresses: ['nobody@dest.test'] } }],
      }),
    ),
  );
  assert.equal(bulk.name, 'NotFoundException');
});

test('v1: CreateTemplate, GetTemplate, UpdateTemplate, ListTemplates, TestRenderTemplate, DeleteTemplate', async () => {
  const template = {
    TemplateName: 'v1-crud',
    SubjectPart: 'Hi {{name}}',
    TextPart: 'Line one\r\nLine {{two}}',
    HtmlPart: '<i>{{name}}</i>',
  };
  await v1.send(new CreateTemplateCommand({ Template: template }));
  assert.deepEqual(
    (await v1.send(new GetTemplateCommand({ TemplateName: 'v1-crud' }))).Template,
    template,
  );
  // one store: v2 sees it
  const seen = await v2.send(new GetEmailTemplateCommand({ TemplateName: 'v1-crud' }));
  assert.equal(seen.TemplateContent?.Subject, 'Hi {{name}}');

  const again = await rejection(v1.send(new CreateTemplateCommand({ Template: template })));
  assert.equal(again.name, 'AlreadyExistsException');
  const broken = await rejection(
    v1.send(
      new CreateTemplateCommand({ Template: { TemplateName: 'v1-bad', TextPart: '{{#if}}' } }),
    ),
  );
  assert.equal(broken.name, 'InvalidTemplateException');

  await v1.send(
    new UpdateTemplateCommand({
      Template: { TemplateName: 'v1-crud', SubjectPart: 'Yo {{name}}', TextPart: 'T' },
    }),
  );
  const updated = await v1.send(new GetTemplateCommand({ TemplateName: 'v1-crud' }));
  assert.deepEqual(updated.Template, {
    TemplateName: 'v1-crud',
    SubjectPart: 'Yo {{name}}',
    TextPart: 'T',
  });

  const names: string[] = [];
  let token: string | undefined;
  do {
    const page = await v1.send(new ListTemplatesCommand({ MaxItems: 2, NextToken: token }));
    for (const t of page.TemplatesMetadata ?? []) {
      names.push(t.Name ?? '');
      assert.ok(t.CreatedTimestamp instanceof Date);
    }
    token = page.NextToken;
  } while (token);
  assert.ok(names.includes('v1-crud'), names.join(' '));
  assert.deepEqual(names, [...names].sort(), 'listed by name');

  const r = await v1.send(
    new TestRenderTemplateCommand({ TemplateName: 'v1-crud', TemplateData: '{"name":"Ann"}' }),
  );
  assert.match(r.RenderedTemplate ?? '', /^Subject: Yo Ann\r$/m, 'CR LF survives the XML');

  await v1.send(new DeleteTemplateCommand({ TemplateName: 'v1-crud' }));
  const gone = await rejection(v1.send(new GetTemplateCommand({ TemplateName: 'v1-crud' })));
  assert.equal(gone.name, 'TemplateDoesNotExistException');
});

test('v1: SendTemplatedEmail and SendBulkTemplatedEmail arrive rendered and DKIM-signed', async () => {
  await v1.send(
    new CreateTemplateCommand({
      Template: {
        TemplateName: 'v1-send',
        SubjectPart: 'Invoice {{number}}',
        TextPart: 'Dear {{name}}, you owe {{amount}}.',
        HtmlPart: '<p>{{name}} owes {{amount}}</p>',
      },
    }),
  );
  const sent = await v1.send(
    new SendTemplatedEmailCommand({
      Source: 'billing@example.test',
      Destination: { ToAddresses: ['erin@dest.test'] },
      Template: 'v1-send',
      TemplateData: JSON.stringify({ number: 12, name: 'Erin', amount: '<5 EUR>' }),
      Tags: [{ Name: 'kind', Value: 'invoice' }],
    }),
  );
  assert.match(sent.MessageId ?? '', /^[0-9a-z]{18}$/);
  const erin = await mx.rx.arrival(to('erin@dest.test'), 'the v1 templated message');
  assert.match(text(erin), /^Subject: Invoice 12\r$/m);
  assert.ok(text(erin).includes('Dear Erin, you owe <5 EUR>.'));
  assert.ok(text(erin).includes('<p>Erin owes &lt;5 EUR&gt;</p>'));
  await assertSigned(erin);

  const bulk = await v1.send(
    new SendBulkTemplatedEmailCommand({
      Source: 'billing@example.test',
      Template: 'v1-send',
      DefaultTemplateData: JSON.stringify({ number: 0, name: 'customer', amount: 'nothing' }),
      Destinations: [
        {
          Destination: { ToAddresses: ['fred@dest.test'] },
          ReplacementTemplateData: JSON.stringify({ number: 13, name: 'Fred' }),
        },
        { Destination: { ToAddresses: ['@'] } },
      ],
    }),
  );
  assert.deepEqual(
    bulk.Status?.map((x) => x.Status),
    ['Success', 'InvalidParameterValue'],
  );
  const fred = await mx.rx.arrival(to('fred@dest.test'), 'the v1 bulk message');
  assert.match(text(fred), /^Subject: Invoice 13\r$/m);
  assert.ok(text(fred).includes('Dear Fred, you owe nothing.'));
  await assertSigned(fred);
});

test('v1: a missing template is TemplateDoesNotExistException', async () => {
  const err = await rejection(
    v1.send(
      new SendTemplatedEmailCommand({
        Source: 'billing@example.test',
        Destination: { ToAddresses: ['nobody@dest.test'] },
        Template: 'no-such-template',
        TemplateData: '{}',
      }),
    ),
  );
  assert.equal(err.name, 'TemplateDoesNotExistException');
  assert.equal(err.$metadata?.httpStatusCode, 400);
});

test("a key's templates are its own: another key can neither read, change nor send them", async () => {
  await v2.send(
    new CreateEmailTemplateCommand({
      TemplateName: 'private',
      TemplateContent: { Subject: 'mine', Text: 'only mine' },
    }),
  );
  const other = await posta([
    'key',
    'create',
    '--domain',
    'example.test',
    '--json',
    '--dir',
    s.dir,
  ]);
  assert.equal(other.code, 0, other.stderr);
  const k = JSON.parse(other.stdout) as { access_key_id: string; secret_access_key: string };
  const theirs = new SESv2Client({
    endpoint: `http://${s.host}:${s.ports.http}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: k.access_key_id, secretAccessKey: k.secret_access_key },
    maxAttempts: 1,
  });
  try {
    await assert.rejects(theirs.send(new GetEmailTemplateCommand({ TemplateName: 'private' })), {
      name: 'NotFoundException',
    });
    await assert.rejects(
      theirs.send(
        new UpdateEmailTemplateCommand({
          TemplateName: 'private',
          TemplateContent: { Subject: 'taken', Text: 'over' },
        }),
      ),
      { name: 'NotFoundException' },
    );
    const listed = await theirs.send(new ListEmailTemplatesCommand({}));
    assert.ok(!(listed.TemplatesMetadata ?? []).some((t) => t.TemplateName === 'private'));
    const mine = await v2.send(new GetEmailTemplateCommand({ TemplateName: 'private' }));
    assert.equal(mine.TemplateContent?.Subject, 'mine');
  } finally {
    theirs.destroy();
  }
});
