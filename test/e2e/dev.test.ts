/** `npm start` / `posta dev`: the sandbox accepts, signs and captures mail, and stops cleanly. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { POSTA, tempDir } from '../helpers/posta.ts';

const run = promisify(execFile);

/** `posta dev` in a sandbox folder of its own, on random ports; `listening()` waits for its four listeners. */
async function startDev() {
  const root = join(await tempDir(), 'sandbox');
  // Ports N+25 … N+6025 stay below Linux's ephemeral range (32768 up), where
  // other tests' client sockets on 127.0.0.1 could hold one.
  const base = 10000 + Math.floor(Math.random() * 16000);
  const child = spawn(POSTA, ['dev', '--sandbox', root, '--port-base', String(base)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  return {
    root,
    base,
    child,
    exited,
    stderr: () => stderr,
    async listening() {
      for (let i = 0; i < 200 && (stdout.match(/"listening"/g) ?? []).length < 4; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}

test('posta dev prints an account, accepts mail from swaks and captures it signed', async () => {
  const dev = await startDev();
  const { root, base, child, exited } = dev;
  try {
    await dev.listening();
    const stderr = dev.stderr();
    const password = /password (\S+)/.exec(stderr)?.[1];
    assert.ok(password, `the sandbox prints the password: ${stderr}`);
    // No '-' or '_': swaks would take a leading '-' for an option.
    assert.match(password, /^[A-Za-z0-9]{16}$/);
    assert.match(stderr, /captured mail\s+(\S+)\/\*\.eml/);
    const r = await run('swaks', [
      '--server',
      `127.0.0.1:${base + 587}`,
      '--tls',
      '--auth-user',
      'dev@example.test',
      '--auth-password',
      password,
      '--from',
      'dev@example.test',
      '--to',
      'someone@example.org',
    ]);
    assert.match(r.stdout, /250 2\.0\.0 Ok: queued as (\w+)/);
    const captured = join(root, 'posta/data/captured');
    // The sandbox delivers through the queue, so the capture follows the 250 shortly.
    let files: string[] = [];
    for (let i = 0; i < 100 && files.length === 0; i++) {
      files = (await readdir(captured).catch(() => [])).filter((f) => f.endsWith('.eml'));
      if (files.length === 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(files.length, 1);
    const eml = await readFile(join(captured, files[0] ?? ''), 'utf8');
    assert.equal((eml.match(/^DKIM-Signature: /gm) ?? []).length, 2);
    assert.match(eml, /^Received: from .*\sby mail\.example\.test \(posta\) with ESMTPSA/ms);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, 'Ctrl-C stops the sandbox cleanly');
});

/** An HTML message with a text alternative and a PDF attachment, as an application sends one. */
function htmlMessage(): string {
  const pdf = Buffer.from('%PDF-1.4\n% a test attachment\n').toString('base64');
  return [
    'From: Dev <dev@example.test>',
    'To: Someone <someone@example.org>',
    'Subject: Your invoice',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="mixed"',
    '',
    '--mixed',
    'Content-Type: multipart/alternative; boundary="alt"',
    '',
    '--alt',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Your invoice is attached.',
    '--alt',
    'Content-Type: text/html; charset=utf-8',
    '',
    '<html><body><h1 id="greeting">Your invoice</h1><p>It is <b>attached</b>.</p><script>document.title="ran"</script></body></html>',
    '--alt--',
    '--mixed',
    'Content-Type: application/pdf; name="invoice.pdf"',
    'Content-Disposition: attachment; filename="invoice.pdf"',
    'Content-Transfer-Encoding: base64',
    '',
    pdf,
    '--mixed--',
    '',
  ].join('\r\n');
}

test('in Chromium, the sandbox shows captured mail: the rendered HTML, the text, the attachment, the DKIM passes', async () => {
  const dev = await startDev();
  const { root, base, child, exited } = dev;
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox'],
  });
  try {
    await dev.listening();
    const stderr = dev.stderr();
    const url = /dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/login\/\S+)/.exec(stderr)?.[1];
    assert.ok(url, `the sandbox prints a login link to the dashboard: ${stderr}`);
    const password = /password (\S+)/.exec(stderr)?.[1] ?? '';
    const data = join(root, '..', 'message.eml');
    await writeFile(data, htmlMessage());
    const r = await run('swaks', [
      '--server',
      `127.0.0.1:${base + 587}`,
      '--tls',
      '--auth-user',
      'dev@example.test',
      '--auth-password',
      password,
      '--from',
      'dev@example.test',
      '--to',
      'someone@example.org',
      '--data',
      `@${data}`,
    ]);
    assert.match(r.stdout, /250 2\.0\.0 Ok: queued as (\w+)/);
    const captured = join(root, 'posta/data/captured');
    for (let i = 0; i < 100 && !(await readdir(captured).catch(() => [])).length; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }

    const page = await browser.newPage();
    await page.goto(url);
    await page.getByRole('link', { name: 'Captured' }).click();
    await page.getByLabel('Sender, recipient or subject').fill('invoice');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'Your invoice' }).click();
    const dkim = await page.locator('#dkim tbody tr').allInnerTexts();
    assert.equal(dkim.length, 2, dkim.join('\n'));
    assert.ok(
      dkim.some((row) => /^example\.test\t\S+\trsa-sha256\tpass/.test(row)),
      dkim.join('\n'),
    );
    assert.ok(
      dkim.some((row) => /^example\.test\t\S+\ted25519-sha256\tpass/.test(row)),
      dkim.join('\n'),
    );
    assert.equal(await page.locator('#text').innerText(), 'Your invoice is attached.');
    // the HTML rendered in its sandboxed frame, and its script never ran
    const frame = page.frameLocator('#html');
    assert.equal(await frame.locator('#greeting').innerText(), 'Your invoice');
    const htmlFrame = page.frames().find((f) => f.url().endsWith('/html'));
    assert.ok(htmlFrame);
    assert.notEqual(await htmlFrame.title(), 'ran');
    assert.match(
      await page.locator('#attachments').innerText(),
      /invoice\.pdf \(application\/pdf, \d+ bytes\)/,
    );
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'invoice.pdf' }).click();
    const file = await (await download).path();
    assert.match(await readFile(file, 'utf8'), /^%PDF-1\.4/);
    assert.match(await page.locator('#headers').innerText(), /^DKIM-Signature\t/m);
    await page.screenshot({ path: join(root, '..', 'captured.png'), fullPage: true });
    await page.locator('#html').screenshot({ path: join(root, '..', 'captured-html.png') });
  } finally {
    await browser.close();
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, 'Ctrl-C stops the sandbox cleanly');
});
