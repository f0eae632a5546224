/**
 * The command table: every verb of the command-line contract (PRODUCT.md),
 * with the one line `posta --help` shows. A command's module is imported only
 * when that command runs, so `posta user list` does not pay for loading the
 * SMTP server, mailauth and the rest.
 */
import type { Command } from './command.ts';

export interface CommandEntry {
  name: string;
  /** One line for `posta --help`. */
  summary: string;
  load(): Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: 'init',
    summary: 'create the config folder (or add a domain), DKIM keys, and print DNS records',
    load: async () => (await import('./init.ts')).init,
  },
  {
    name: 'serve',
    summary: 'run the server in the foreground (logs to stdout)',
    load: async () => (await import('./serve.ts')).serve,
  },
  {
    name: 'dev',
    summary: 'run a sandbox on loopback: mail is accepted, signed and captured, never sent',
    load: async () => (await import('./dev.ts')).dev,
  },
  {
    name: 'user',
    summary: 'manage sending accounts: add, del, list, passwd',
    load: async () => (await import('./user.ts')).user,
  },
  {
    name: 'authenticate',
    summary: 'check an account password: exit 0 when right, 1 when not',
    load: async () => (await import('./authenticate.ts')).authenticate,
  },
  {
    name: 'key',
    summary: 'access keys for the SES APIs and SMTP AUTH: create, list, revoke',
    load: async () => (await import('./key.ts')).key,
  },
  {
    name: 'suppress',
    summary: 'the suppression list of each domain: add, del, list',
    load: async () => (await import('./suppress.ts')).suppress,
  },
  {
    name: 'events',
    summary: 'what happened to each message: Send, Delivery, DeliveryDelay, Bounce',
    load: async () => (await import('./events.ts')).events,
  },
  {
    name: 'reports',
    summary:
      'what the DMARC and TLS reports mailed to postmaster@ say: who sends as you, who fails',
    load: async () => (await import('./reports.ts')).reports,
  },
  {
    name: 'webhooks',
    summary: 'the webhook endpoints of posta.toml: list, log, secret',
    load: async () => (await import('./webhooks.ts')).webhooks,
  },
  {
    name: 'alias',
    summary: 'manage aliases and the catch-all: add, del, list',
    load: async () => (await import('./alias.ts')).alias,
  },
  {
    name: 'dns',
    summary: 'print the DNS records to publish for a domain (zone-file lines)',
    load: async () => (await import('./dns.ts')).dns,
  },
  {
    name: 'dkim',
    summary: 'DKIM keys: rotate to new keys without a gap in signing, status of a rotation',
    load: async () => (await import('./dkim.ts')).dkim,
  },
  {
    name: 'queue',
    summary: 'inspect and act on the queue: list, show, flush, delete',
    load: async () => (await import('./queue.ts')).queue,
  },
  {
    name: 'cert',
    summary: 'the certificate: status (names, expiry, next renewal), renew',
    load: async () => (await import('./cert.ts')).cert,
  },
  {
    name: 'status',
    summary: 'health of the running server: queue, deliveries, certificate, errors',
    load: async () => (await import('./status.ts')).status,
  },
  {
    name: 'install-service',
    summary: 'install posta as a systemd service running as an unprivileged user',
    load: async () => (await import('./install-service.ts')).installService,
  },
  {
    name: 'send',
    summary: 'send a test message over SMTP submission; --wait follows it to the MX',
    load: async () => (await import('./send.ts')).send,
  },
  {
    name: 'sendmail',
    summary: 'sendmail-compatible submission from stdin, straight into the queue',
    load: async () => (await import('./sendmail.ts')).sendmail,
  },
  {
    name: 'admin',
    summary: 'the way into the dashboard: set the admin password, print a one-time login link',
    load: async () => (await import('./admin.ts')).admin,
  },
  {
    name: 'doctor',
    summary: 'check live DNS and the server against what they should be',
    load: async () => (await import('./doctor.ts')).doctor,
  },
];
