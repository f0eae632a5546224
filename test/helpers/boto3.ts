/**
 * boto3 (Debian's python3-boto3) through test/peers/ses_boto3.py: one SES
 * call per run, with only endpoint_url, region and credentials set, and no
 * AWS configuration of this machine's.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './posta.ts';

const PYTHON = '/usr/bin/python3';
export const REGION = 'eu-west-1';

/** What ses_boto3.py prints: the response, or the ClientError botocore raised. */
export interface Reply {
  ok?: Record<string, unknown> & { ResponseMetadata: { RequestId: string } };
  /** The response with each leaf replaced by its Python type name. */
  types?: Record<string, unknown>;
  /** The request as botocore signed it. */
  signed?: { url: string; host: string; signed_headers: string };
  error?: {
    code: string;
    message: string;
    status: number;
    request_id: string;
    class: string;
    /** The class raised is client.exceptions.<class>. */
    modeled: boolean;
  };
}

/** One boto3 call: `service`.`op`(**kwargs); {__bytes__: text} is a blob. */
export function boto3(
  endpoint: string,
  creds: { id: string; secret: string },
  service: 'ses' | 'sesv2',
  op: string,
  kwargs: unknown,
): Promise<Reply> {
  // No AWS configuration of this machine's, and no proxy for loopback.
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^AWS_|proxy$/i.test(k)) env[k] = v;
  }
  Object.assign(env, {
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  const args = [
    join(ROOT, 'test/peers/ses_boto3.py'),
    endpoint,
    REGION,
    creds.id,
    creds.secret,
    service,
    op,
    JSON.stringify(kwargs),
  ];
  return new Promise((resolve, reject) => {
    execFile(PYTHON, args, { env, timeout: 60_000 }, (err, stdout, stderr) =>
      err
        ? reject(new Error(`ses_boto3.py ${op}: ${stderr || err.message}`))
        : resolve(JSON.parse(stdout) as Reply),
    );
  });
}
