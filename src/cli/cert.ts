import { writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PostaError, UsageError } from '../errors.ts';
import { loadConfig, type ResolvedConfig } from '../config/load.ts';
import { acmePaths, readAcmeState, type AcmeState } from '../acme/manager.ts';
import { positionals, type Command } from './command.ts';

export const cert: Command = {
  name: 'cert',
  help: `Usage: posta cert status [--json]
       posta cert renew [--no-wait]

status  the certificate the server uses: names, issuer, not-after, and with
        [acme] the next renewal and the last error
renew   ask the running server to order a new certificate now ([acme] only)
        and wait (up to 3 minutes) for the result`,
  options: { json: { type: 'boolean' }, 'no-wait': { type: 'boolean' } },
  async run(args) {
    const [verb = '', ...rest] = args.positionals;
    const sub = { ...args, positionals: rest };
    const cmd = { ...this, name: `cert ${verb}` };
    const config = await loadConfig(args.dir);
    switch (verb) {
      case 'status': {
        positionals(cmd, sub, []);
        const s = await status(config);
        process.stdout.write(
          args.values.json === true ? JSON.stringify(s, null, 2) + '\n' : statusText(s),
        );
        return s.lastError ? 1 : 0;
      }
      case 'renew': {
        positionals(cmd, sub, []);
        if (!config.acme) {
          throw new PostaError(
            `${config.file} has no [acme]: the certificate comes from [tls] files, renewed by the tool that wrote them; posta reloads them when they change.`,
          );
        }
        const p = acmePaths(config.dataDir, config.acme.names);
        const before = (await readAcmeState(config.dataDir, config.acme.names))?.lastAttempt;
        await writeFile(p.request, `${new Date().toISOString()}\n`);
        if (args.values['no-wait'] === true) {
          process.stdout.write('Renewal requested; `posta cert status` shows the result.\n');
          return 0;
        }
        for (let i = 0; i < 180 * 4; i++) {
          await sleep(250);
          const s = await readAcmeState(config.dataDir, config.acme.names);
          if (s?.lastAttempt && s.lastAttempt !== before && Date.parse(s.lastAttempt) > 0) {
            if (s.lastError && s.lastAttempt >= (s.renewedAt ?? '')) {
              throw new PostaError(`The renewal failed: ${s.lastError}`);
            }
            if (s.renewedAt && s.renewedAt >= s.lastAttempt) {
              process.stdout.write(statusText(await status(config)));
              return 0;
            }
          }
        }
        throw new PostaError(
          'No renewal within 3 minutes; is `posta serve` running with this folder? `posta cert status` shows the last attempt.',
        );
      }
      default:
        throw new UsageError(
          `${verb ? `"${verb}" is not a cert command` : 'A cert command is missing'}; use status or renew.`,
        );
    }
  },
};

interface Status extends Partial<AcmeState> {
  source: 'acme' | 'files';
  file: string;
  names: string[];
}

async function status(config: ResolvedConfig): Promise<Status> {
  const file = config.acme
    ? acmePaths(config.dataDir, config.acme.names).cert
    : (config.tls?.cert ?? '');
  if (!config.acme && !config.tls) {
    throw new PostaError(`${config.file} has neither [acme] nor [tls]; posta has no certificate.`);
  }
  const state = config.acme ? await readAcmeState(config.dataDir, config.acme.names) : null;
  let x509: X509Certificate | null = null;
  try {
    x509 = new X509Certificate(await readFile(file));
  } catch {
    if (!config.acme)
      throw new PostaError(`Cannot read the certificate ${file}; fix [tls] in ${config.file}.`);
  }
  const names = x509
    ? (x509.subjectAltName ?? '')
        .split(', ')
        .filter((n) => n.startsWith('DNS:'))
        .map((n) => n.slice(4))
    : [...(config.acme?.names ?? [])];
  return {
    source: config.acme ? 'acme' : 'files',
    file,
    ...state,
    names,
    issuer: x509 ? (/CN=([^\n,]+)/.exec(x509.issuer)?.[1] ?? x509.issuer) : state?.issuer,
    notAfter: x509 ? new Date(x509.validTo).toISOString() : state?.notAfter,
  };
}

function statusText(s: Status): string {
  const lines = [
    `certificate  ${s.file}${s.notAfter ? '' : ' (none yet)'}`,
    `names        ${s.names.join(', ')}`,
  ];
  if (s.issuer) lines.push(`issuer       ${s.issuer}`);
  if (s.notAfter) {
    const days = Math.floor((Date.parse(s.notAfter) - Date.now()) / 86400_000);
    lines.push(`not after    ${s.notAfter} (${days} days)`);
  }
  if (s.source === 'acme') {
    if (s.nextRenewal) lines.push(`next renewal ${s.nextRenewal}`);
    if (s.renewedAt) lines.push(`renewed      ${s.renewedAt}`);
    if (s.lastError) lines.push(`last error   ${s.lastError} (at ${s.lastAttempt ?? '?'})`);
  } else {
    lines.push('renewal      by the tool that writes the files; posta reloads them within seconds');
  }
  return lines.join('\n') + '\n';
}
