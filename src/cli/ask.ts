/**
 * One question on the terminal, answered with one line (echo on). Only for
 * a TTY: a script's standard input is never read as an answer.
 */
import { createInterface } from 'node:readline';
import { PostaError } from '../errors.ts';

/** The answer, trimmed; '' for an empty line or end of input; Ctrl-C cancels. */
export function askLine(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    let answered = false;
    rl.on('SIGINT', () => {
      answered = true;
      rl.close();
      process.stderr.write('\n');
      reject(new PostaError('Cancelled.'));
    });
    rl.on('close', () => {
      if (!answered) resolve('');
    });
    rl.question(question, (answer) => {
      answered = true;
      rl.close();
      resolve(answer.trim());
    });
  });
}
