/**
 * SMTP dialogues in test/transcripts/*.txt, replayed against a real server.
 *
 * Format, one line each:
 *   # comment                   ignored
 *   @port smtp|submission       which listener (plaintext; before STARTTLS)
 *   @alias PATTERN TARGET       `posta alias add PATTERN TARGET` before the dialogue
 *   C: TEXT                     the client sends TEXT + CRLF ("C:" alone sends an empty line)
 *   S: TEXT                     the next reply line matches TEXT exactly; `*` matches any run
 *   S~ REGEX                    the next reply line matches REGEX
 * Client lines are sent as they come, so consecutive C: lines are pipelined
 * (as in the body of DATA). After the last line nothing more may arrive.
 * Each transcript gets a fresh server, so aliases never leak between them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startServer } from '../helpers/server.ts';
import { ROOT, posta } from '../helpers/posta.ts';

const DIR = join(ROOT, 'test/transcripts');
const LINE_TIMEOUT_MS = 5000;

type Step = { kind: 'C'; text: string } | { kind: 'S'; re: RegExp; source: string };

interface Transcript {
  port: 'smtp' | 'submission';
  aliases: [string, string][];
  steps: Step[];
}

function glob(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

export function parse(text: string): Transcript {
  const t: Transcript = { port: 'smtp', aliases: [], steps: [] };
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('@port ')) {
      const p = line.slice(6).trim();
      assert.ok(p === 'smtp' || p === 'submission', `line ${i + 1}: unknown port ${p}`);
      t.port = p;
    } else if (line.startsWith('@alias ')) {
      const [pattern, target] = line.slice(7).trim().split(/\s+/);
      assert.ok(pattern && target, `line ${i + 1}: @alias PATTERN TARGET`);
      t.aliases.push([pattern, target]);
    } else if (line === 'C:' || line.startsWith('C: ')) {
      t.steps.push({ kind: 'C', text: line.slice(3) });
    } else if (line.startsWith('S: ')) {
      t.steps.push({ kind: 'S', re: glob(line.slice(3)), source: line });
    } else if (line.startsWith('S~ ')) {
      t.steps.push({ kind: 'S', re: new RegExp(line.slice(3)), source: line });
    } else {
      assert.fail(`line ${i + 1}: cannot parse ${JSON.stringify(line)}`);
    }
  }
  return t;
}

/** Reply lines as they arrive, one at a time. */
function lineReader(sock: Socket) {
  const lines: string[] = [];
  let buf = '';
  let wake: (() => void) | undefined;
  sock.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let nl: number;
    while ((nl = buf.indexOf('\r\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 2);
    }
    wake?.();
  });
  sock.on('close', () => wake?.());
  return {
    async next(): Promise<string | undefined> {
      const deadline = Date.now() + LINE_TIMEOUT_MS;
      while (lines.length === 0 && !sock.closed && Date.now() < deadline) {
        await Promise.race([new Promise<void>((r) => (wake = r)), sleep(100)]);
      }
      return lines.shift();
    },
    rest: () => [...lines, ...(buf ? [buf] : [])],
  };
}

const files = readdirSync(DIR)
  .filter((f) => f.endsWith('.txt'))
  .sort();

test('there are transcripts', () => assert.ok(files.length >= 7));

for (const file of files) {
  test(`transcript ${file}`, async (t) => {
    const transcript = parse(readFileSync(join(DIR, file), 'utf8'));
    const s = await startServer();
    t.after(() => s.stop());
    for (const [pattern, target] of transcript.aliases) {
      await s.reload(async () => {
        const r = await posta(['alias', 'add', pattern, target, '--dir', s.dir]);
        assert.equal(r.code, 0, r.stderr);
      });
    }

    const sock = connect(s.ports[transcript.port], s.host);
    t.after(() => sock.destroy());
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    const reader = lineReader(sock);
    const seen: string[] = [];
    for (const step of transcript.steps) {
      if (step.kind === 'C') {
        sock.write(`${step.text}\r\n`);
        seen.push(`C: ${step.text}`);
        continue;
      }
      const got = await reader.next();
      seen.push(`S: ${got ?? '(nothing)'}`);
      assert.ok(
        got !== undefined && step.re.test(got),
        `${file}: expected ${step.source}\n--- dialogue so far:\n${seen.join('\n')}`,
      );
    }
    // nothing unexpected after the last line (QUIT closes the connection)
    await Promise.race([new Promise((r) => sock.once('close', r)), sleep(500)]);
    assert.deepEqual(reader.rest(), [], `${file}: unexpected extra reply lines`);
  });
}
