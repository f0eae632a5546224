/**
 * The two kinds of failure a command can end with, and their exit codes
 * (PRODUCT.md): a failed check or operation exits 1, wrong usage exits 2.
 * The message is one sentence that says what to do; main.ts prints it to stderr.
 */
export class PostaError extends Error {
  readonly exitCode: number = 1;
}

export class UsageError extends PostaError {
  override readonly exitCode: number = 2;
}
