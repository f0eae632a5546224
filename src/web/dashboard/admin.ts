/** Where the dashboard is, and its admin password, for the CLI and the server alike. */
import { readFile } from 'node:fs/promises';
import type { ResolvedConfig } from '../../config/load.ts';
import { adminPasswordFile } from '../../config/paths.ts';
import { openQueueDb } from '../../queue/spool.ts';
import { createLink } from './sessions.ts';
import { httpsBase } from '../../unsubscribe/fields.ts';

type Where = Pick<ResolvedConfig, 'listen' | 'hostname' | 'dashboard'>;

/**
 * The dashboard's URL on the first http listener (loopback by default), with a
 * trailing slash; with no http listener, https://HOSTNAME/ when [dashboard]
 * https serves it there.
 */
export function dashboardUrl(config: Where): string {
  const e = config.listen.http[0];
  const https = config.dashboard.https ? httpsBase(config.hostname, config.listen.https) : null;
  if (!e && https) return `${https}/`;
  if (!e) return 'http://127.0.0.1:8025/ (no [listen] http listener is set: add one)';
  const host = e.host.includes(':') ? `[${e.host}]` : e.host;
  // a wildcard listener is reached on loopback
  const at = host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
  return `http://${at}:${e.port}/`;
}

/** The admin password hash, or null when none is set. */
export async function readAdminHash(dir: string): Promise<string | null> {
  const text = await readFile(adminPasswordFile(dir), 'utf8').catch(() => null);
  return text?.trim() || null;
}

/** A new one-time login link to the dashboard (sessions.ts), for `posta admin link` and `posta dev`. */
export function loginLink(config: Where & Pick<ResolvedConfig, 'dataDir'>): string {
  const db = openQueueDb(config.dataDir);
  try {
    return `${dashboardUrl(config)}login/${createLink(db)}`;
  } finally {
    db.close();
  }
}
