/**
 * One setup step of a nodemailer SMTPConnection (connect, login). Until the
 * session is up, nodemailer may report a failure as an 'error' or 'end'
 * event only, never calling back, so listen for those too: a dropped
 * connection must end the wait, never hang it.
 */
import type SMTPConnection from 'nodemailer/lib/smtp-connection';

export function connectionStep<E extends Error>(
  conn: SMTPConnection,
  start: (done: (err?: unknown) => void) => void,
  failure: (err: Error) => E,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const fail = (err?: unknown) =>
      reject(failure((err as Error | undefined) ?? new Error('the server closed the connection')));
    conn.once('error', fail);
    conn.once('end', fail);
    start((err) => {
      conn.removeListener('error', fail);
      conn.removeListener('end', fail);
      if (err) fail(err);
      else resolve();
    });
  });
}
