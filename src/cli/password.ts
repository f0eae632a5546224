/**
 * Where a password comes from on the command line: --password, else a prompt
 * on the terminal with echo off, else the first line of standard input (for
 * scripts: `echo "$pw" | posta user add i@example.com`).
 */
import { PostaError } from '../errors.ts';

export async function readPassword(
  flag: string | undefined,
  opts: { confirm: boolean; prompt?: string },
): Promise<string> {
  if (flag !== undefined) return checked(flag);
  if (process.stdin.isTTY) {
    const pw = await promptHidden(opts.prompt ?? 'Password: ');
    if (opts.confirm && (await promptHidden('Repeat password: ')) !== pw) {
      throw new PostaError('The two passwords differ; run the command again.');
    }
    return checked(pw);
  }
  return checked(await firstLine());
}

function checked(pw: string): string {
  if (pw === '')
    throw new PostaError('The password is empty; give one with --password or on standard input.');
  return pw;
}

async function firstLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if ((chunk as Buffer).includes(10)) break;
  }
  return (Buffer.concat(chunks).toString('utf8').split('\n')[0] ?? '').replace(/\r$/, '');
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let text = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new PostaError('Cancelled.'));
        if (ch === '\u007f' || ch === '\b') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}
