/**
 * posta.toml: the one schema of the server's settings. Each key's type, default
 * and documentation live here and nowhere else; `posta init` writes the
 * commented file from this schema (template.ts) and load.ts validates against it.
 *
 * Unknown keys are errors, so a typo never silently falls back to a default.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { TomlDate } from 'smol-toml';
import { parseAddress, parseDomain } from '../address/address.ts';
import { parseEndpoint, parseHostPort } from './endpoint.ts';

/** A list of "ADDRESS:PORT"; the error's examples listen on the port of the first default. */
const endpoints = (
  defaults: string[],
  doc: string,
  port = /:(\d+)$/.exec(defaults[0] ?? '')?.[1],
  [v4, v6] = [`0.0.0.0:${port}`, `[::]:${port}`],
) =>
  z
    .array(
      z.string().refine((s) => parseEndpoint(s) !== null, {
        message: `is not ADDRESS:PORT; write "${v4}" for IPv4 or "${v6}" for IPv6`,
      }),
    )
    .default(defaults)
    .describe(doc);

const hostPort = z.string().refine((s) => parseHostPort(s) !== null, {
  message: 'is not HOST:PORT; write "smtp.example.net:587"',
});

const domainName = z.string().refine((s) => parseDomain(s).ok, {
  message: 'is not a fully qualified domain name like mail.example.com',
});

/**
 * Messages a day per destination on the days of a warm-up: doubling from 50,
 * the usual advice for a new sender (Gmail: "increase sending volume
 * slowly"; SES's dedicated-IP warm-up plans), no limit after day 12.
 */
export const DEFAULT_WARMUP_SCHEDULE = [
  50, 100, 200, 400, 800, 1500, 3000, 6000, 12000, 25000, 50000, 100000,
];

/**
 * A TOML local date (start = 2026-12-01), or the same as a string, as
 * "YYYY-MM-DD"; null for anything else (a date with a time, say). The schema
 * checks with it rather than transforming (zod's JSON Schema, which the
 * template is written from, loses the defaults of a table holding a transform).
 */
export function dateText(v: unknown): string | null {
  const s = v instanceof TomlDate ? (v.isDate() ? v.toISOString() : null) : v;
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(s)) return null;
  const t = Date.parse(`${s}T00:00:00Z`);
  return !isNaN(t) && new Date(t).toISOString().slice(0, 10) === s ? s : null;
}

const localDate = z.unknown().refine((v) => dateText(v) !== null, {
  message: 'is not a date; write a TOML date without a time, like 2026-12-01',
});

/** Whether a database URL carries a password (postgres://user:secret@host/db). */
function hasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return false;
  }
}

const ipAddress = z.string().refine((s) => isIP(s) !== 0, {
  message: 'is not an IPv4 or IPv6 address',
});

export const ConfigSchema = z.strictObject({
  hostname: domainName.describe(
    'The name this server gives in EHLO and in its certificate. It must equal the PTR (reverse DNS) of every address posta sends from.',
  ),
  data_dir: z
    .string()
    .min(1)
    .default('data')
    .describe(
      'Runtime state (queue, logs, certificates), relative to this folder. Do not commit it.',
    ),
  addresses: z
    .array(ipAddress)
    .default([])
    .describe(
      'Public IPv4 and IPv6 addresses of this server. `posta dns` prints A/AAAA, SPF and PTR records for them.',
    ),
  listen: z
    .strictObject({
      smtp: endpoints(
        ['0.0.0.0:25', '[::]:25'],
        'Inbound MX: accepts mail for local domains only.',
      ),
      submission: endpoints(
        ['0.0.0.0:587', '[::]:587'],
        'Submission with STARTTLS; AUTH required (RFC 6409).',
      ),
      submissions: endpoints(
        ['0.0.0.0:465', '[::]:465'],
        'Submission over implicit TLS; AUTH required (RFC 8314).',
      ),
      http: endpoints(
        ['127.0.0.1:8025'],
        'HTTP: the SES APIs for applications on this machine, Prometheus /metrics and /healthz, and the dashboard at / (loopback only; log in with `posta admin password` or `posta admin link`).',
      ),
      https: endpoints(
        ['0.0.0.0:443', '[::]:443'],
        'HTTPS: the SES APIs, the MTA-STS policy of every domain at https://mta-sts.DOMAIN/, ACME tls-alpn-01, and the dashboard when [dashboard] https is on.',
      ),
    })
    .prefault({})
    .describe('Where posta listens. Each key is a list of "ADDRESS:PORT"; "[::]:PORT" for IPv6.'),
  tls: z
    .strictObject({
      cert: z.string().min(1).describe('PEM certificate chain (fullchain.pem).'),
      key: z.string().min(1).describe('PEM private key (privkey.pem).'),
    })
    .optional()
    .describe(
      'Certificate files, relative to this folder or absolute. posta reloads them when they change.',
    ),
  acme: z
    .strictObject({
      email: z
        .string()
        .regex(/^[^@\s]+@[^@\s]+$/, 'is not an email address')
        .meta({ examples: ['postmaster@example.com'] })
        .describe('Contact address for the ACME account (expiry warnings from the CA).'),
      directory: z
        .string()
        .default('https://acme-v02.api.letsencrypt.org/directory')
        .describe(
          "ACME directory URL: Let's Encrypt by default; https://acme-staging-v02.api.letsencrypt.org/directory to try things out.",
        ),
      names: z
        .array(z.string())
        .default([])
        .describe(
          'Names on the certificate; empty means hostname and mta-sts.DOMAIN of every domain. A wildcard ("*.example.com") needs dns-01.',
        ),
      challenge: z
        .enum(['http-01', 'tls-alpn-01', 'dns-01'])
        .default('http-01')
        .describe(
          'How to prove the names are ours: http-01 on port 80, tls-alpn-01 on the https listener (443), or dns-01 through dns_hook.',
        ),
      http_listen: endpoints(
        ['0.0.0.0:80', '[::]:80'],
        'Where to answer http-01 challenges (port 80 as the CA connects to it).',
      ),
      dns_hook: z
        .string()
        .default('')
        .describe(
          'For dns-01: a program run as `HOOK add NAME VALUE` and `HOOK del NAME VALUE` to publish and remove the TXT record NAME.',
        ),
    })
    .optional()
    .describe(
      'Get and renew the certificate automatically with ACME (RFC 8555), instead of [tls] files.',
    ),
  limits: z
    .strictObject({
      message_size: z
        .number()
        .int()
        .min(1024)
        .default(50 * 1024 * 1024)
        .describe('Largest message accepted, in bytes; advertised with SIZE (RFC 1870).'),
      header_size: z
        .number()
        .int()
        .min(16 * 1024)
        // below the spool's 1 MiB part, with room for the fields posta adds on top
        .max(960 * 1024)
        .default(256 * 1024)
        .describe(
          'Largest header section accepted, in bytes; a larger one gets 552 5.3.4 (it is held in memory while the message is handled).',
        ),
      data_memory: z
        .number()
        .int()
        .min(1024 * 1024)
        .default(64 * 1024 * 1024)
        .describe(
          'Bytes of incoming messages held in memory at once, over all sessions; past it DATA gets 452 4.3.1. A message over 1 MiB is written to a file in the data folder as it arrives and holds only its header in memory.',
        ),
      recipients: z
        .number()
        .int()
        .min(1)
        .default(100)
        .describe(
          'Most recipients in one message (RFC 5321 section 4.5.3.1.8 asks for at least 100).',
        ),
      connections: z.number().int().min(1).default(1000).describe('Most connections at once.'),
      connections_per_ip: z
        .number()
        .int()
        .min(1)
        .default(20)
        .describe('Most connections at once from one client address.'),
      connections_per_prefix: z
        .number()
        .int()
        .min(1)
        .default(50)
        .describe(
          'Most connections at once from one network: an IPv4 /24 or an IPv6 /64 (one host may hold a whole /64).',
        ),
      command_timeout: z
        .number()
        .int()
        .min(10)
        .default(300)
        .describe('Seconds a client may stay silent (RFC 5321 section 4.5.3.2 says 5 minutes).'),
      pre_mail_timeout: z
        .number()
        .int()
        .min(5)
        .default(30)
        .describe(
          'Seconds a client may take for each command before it starts a message with MAIL: after the greeting and between messages.',
        ),
      stress_timeout: z
        .number()
        .int()
        .min(1)
        .default(10)
        .describe(
          'Seconds every timeout shrinks to while a listener holds more than half of `connections` (as Postfix does under stress); DATA must then also average 500 bytes a second after it.',
        ),
      session_timeout: z
        .number()
        .int()
        .min(60)
        .default(1800)
        .describe('Seconds one connection may last in all.'),
      errors_per_session: z
        .number()
        .int()
        .min(1)
        .default(20)
        .describe('Error replies in one session before posta closes it with 421.'),
    })
    .prefault({})
    .describe('Limits that protect the server from mistaken and hostile clients.'),
  mta_sts: z
    .strictObject({
      mode: z
        .enum(['testing', 'enforce', 'none'])
        .default('testing')
        .describe(
          'MTA-STS policy mode for every domain (RFC 8461): start with "testing", switch to "enforce" once TLS reports are clean.',
        ),
      max_age: z
        .number()
        .int()
        .min(86400)
        .max(31557600)
        .default(604800)
        .describe('How long senders cache the policy, in seconds (one day to one year).'),
    })
    .prefault({})
    .describe('The MTA-STS policy posta serves at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.'),
  inbound: z
    .strictObject({
      checks: z
        .boolean()
        .default(true)
        .describe(
          'Check SPF, DKIM, DMARC and ARC of mail arriving on port 25, write the result in Authentication-Results and ARC-seal it. Off only when a filter in front of posta checks it: mail is then forwarded as it came, dmarc_reject does nothing, and no DSN goes back to its unverified sender.',
        ),
      dmarc_reject: z
        .boolean()
        .default(true)
        .describe(
          'Refuse mail on port 25 that fails DMARC when the From domain asks for p=reject (550 5.7.1).',
        ),
      dnsbl: z
        .array(domainName)
        .default([])
        .describe(
          'DNS blocklists to check each connecting address against, e.g. ["zen.spamhaus.org"]; a listed address gets 554 5.7.1.',
        ),
    })
    .prefault({})
    .describe('Mail arriving on port 25 for your domains, which posta forwards.'),
  delivery: z
    .strictObject({
      concurrency: z
        .number()
        .int()
        .min(1)
        .default(64)
        .describe('Most outgoing SMTP sessions at once, over all destinations.'),
      connections_per_domain: z
        .number()
        .int()
        .min(1)
        .default(8)
        .describe(
          'Most sessions at once to one recipient domain. Gmail and Outlook accept 8 from a server with a good reputation; lower it for a new address.',
        ),
      messages_per_minute_per_domain: z
        .number()
        .int()
        .min(0)
        .default(0)
        .describe('Most messages a minute to one recipient domain; 0 means no limit.'),
      destinations: z
        .record(
          domainName,
          z.strictObject({
            connections: z.number().int().min(1).optional(),
            messages_per_minute: z.number().int().min(0).optional(),
          }),
        )
        .default({})
        .meta({ examples: [{ 'outlook.com': { connections: 2, messages_per_minute: 60 } }] })
        .describe(
          'Limits for one recipient domain instead of connections_per_domain and messages_per_minute_per_domain, a table per domain; a key left out keeps the general value.',
        ),
      ip_family: z
        .enum(['prefer-ipv6', 'prefer-ipv4', 'ipv4-only', 'ipv6-only'])
        .default('prefer-ipv6')
        .describe(
          'Which address family to deliver over. Use "ipv4-only" when the IPv6 address has no PTR record: Gmail refuses mail over IPv6 without one.',
        ),
      source_ipv4: z
        .union([ipAddress, z.literal('')])
        .default('')
        .describe('IPv4 address to send from; "" lets the system choose.'),
      source_ipv6: z
        .union([ipAddress, z.literal('')])
        .default('')
        .describe('IPv6 address to send from; "" lets the system choose.'),
      first_retry: z
        .number()
        .min(1)
        .default(300)
        .describe(
          'Seconds before the first retry of a deferred recipient; each later wait doubles.',
        ),
      max_retry: z
        .number()
        .min(1)
        .default(14400)
        .describe('Longest wait between two retries, in seconds.'),
      lifetime: z
        .number()
        .min(1)
        .default(432000)
        .describe('Seconds a message may stay in the queue before it is bounced (5 days).'),
      delay_warning: z
        .number()
        .min(0)
        .default(0)
        .describe(
          'Seconds after which the sender is told that a message is delayed (one warning); 0 means never.',
        ),
      connect_timeout: z
        .number()
        .min(1)
        .default(30)
        .describe('Seconds to wait for a TCP connection to a receiving server.'),
      reply_timeout: z
        .number()
        .min(1)
        .default(600)
        .describe(
          "Most seconds to wait for a receiving server's whole reply to one command, however slowly it comes; each command's own time in RFC 5321 §4.5.3.2 (5 minutes for MAIL and RCPT, 2 for DATA, 10 after the message) applies when shorter.",
        ),
      attempt_timeout: z
        .number()
        .min(1)
        .default(1800)
        .describe(
          'Most seconds one delivery attempt of a message may take, over all MX hosts tried; past it the attempt is deferred.',
        ),
      mta_sts: z
        .boolean()
        .default(true)
        .describe(
          "Honour recipient domains' MTA-STS policies (RFC 8461): in enforce mode, never deliver without verified TLS.",
        ),
      relay: z
        .union([hostPort, z.literal('')])
        .default('')
        .describe(
          'Send through this smarthost ("HOST:PORT") instead of to MX hosts, for providers that block outbound port 25. "" delivers directly.',
        ),
      relay_tls: z
        .enum(['starttls', 'tls'])
        .default('starttls')
        .describe('How to reach the relay: "starttls" (port 587) or implicit "tls" (port 465).'),
      relay_username: z.string().default('').describe('AUTH user name at the relay; "" for none.'),
      relay_password_file: z
        .string()
        .default('')
        .describe('File holding the relay password, relative to this folder. Keep it out of git.'),
      relay_domains: z
        .array(domainName)
        .default([])
        .describe('Recipient domains sent through the relay; empty means all mail.'),
    })
    .prefault({})
    .describe('Delivery of queued mail to other servers.'),
  bulk: z
    .strictObject({
      unsubscribe_domains: z
        .array(domainName)
        .default([])
        .describe(
          'Sending domains all of whose mail (with one recipient) gets one-click unsubscribe (RFC 8058): List-Unsubscribe with an https URL on this server and a mailto: address of the domain, and List-Unsubscribe-Post. Needs [listen] https. A message can opt out with "X-Posta-Unsubscribe: none".',
        ),
      unsubscribe_keys: z
        .array(
          z.string().regex(/^AKPS[A-Z2-7]{16}$/, {
            message:
              'is not an access key id (AKPS and 16 letters or digits, as `posta key list` shows)',
          }),
        )
        .default([])
        .describe(
          'Access keys (their ids) all of whose mail gets one-click unsubscribe, as for unsubscribe_domains: the key a newsletter is sent with, not the one of password resets.',
        ),
      feedback_id: z
        .string()
        .regex(/^[A-Za-z0-9._-]{0,64}$/, {
          message: 'is not a sender id: letters, digits, ".", "_" and "-", at most 64',
        })
        .default('')
        .describe(
          'Gmail\'s Feedback-ID SenderId: when set, mail from posta\'s senders that has no Feedback-ID gets `Feedback-ID: CAMPAIGN:KEY:TYPE:SENDERID` (the campaign tag, the access key id, "bulk" or the configuration set), signed. Empty: none.',
        ),
    })
    .prefault({})
    .describe(
      'Bulk mail: one-click unsubscribe and Feedback-ID. An application may also ask per message with "X-Posta-Unsubscribe: one-click" or SES v2 ListManagementOptions.',
    ),
  webhooks: z
    .record(
      z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, {
        message: 'is not a webhook name: letters, digits, "_" and "-", at most 64',
      }),
      z.strictObject({
        url: z
          .string()
          .regex(/^https?:\/\/[^\s/]+/, { message: 'is not an http:// or https:// URL' })
          .describe('Where the events are POSTed.'),
        format: z
          .enum(['sns', 'posta'])
          .default('sns')
          .describe(
            '"sns": the SES event JSON in an SNS notification, signed as SNS signs (django-ses, django-anymail, Mautic); "posta": the SES event JSON alone, with an HMAC-SHA256 signature header.',
          ),
        events: z
          .array(
            z.enum(['Send', 'Delivery', 'DeliveryDelay', 'Bounce', 'Complaint', 'Subscription']),
          )
          .default(['Send', 'Delivery', 'DeliveryDelay', 'Bounce', 'Complaint', 'Subscription'])
          .describe('The event types to send.'),
        domains: z
          .array(domainName)
          .default([])
          .describe('Only the mail of these sending domains; empty means all.'),
        keys: z
          .array(z.string())
          .default([])
          .describe('Only the mail sent with these access keys (their ids); empty means all.'),
        signature_version: z
          .union([z.literal(1), z.literal(2)])
          .default(1)
          .describe(
            'SNS SignatureVersion: 1 (SHA1withRSA, what most consumers check) or 2 (SHA256).',
          ),
      }),
    )
    .default({})
    .meta({ examples: [{ app: { url: 'https://app.example.com/ses-events', format: 'sns' } }] })
    .describe(
      'Where to send events (Send, Delivery, DeliveryDelay, Bounce, ...), a table per endpoint: [webhooks.NAME] with url = "...". Each is retried with back-off until it answers 2xx, for up to a day; `posta webhooks log` shows the calls.',
    ),
  dkim: z
    .strictObject({
      rotation_check: z
        .number()
        .int()
        .min(1)
        .default(600)
        .describe(
          'Seconds between two checks, during a `posta dkim rotate`, of whether the new DKIM records are published; posta also checks at start and when the config folder changes.',
        ),
    })
    .prefault({})
    .describe('DKIM signing keys.'),
  warmup: z
    .record(
      z.string().refine((s) => (s.includes('@') ? parseAddress(s) : parseDomain(s)).ok, {
        message: 'is not a sending domain like example.com or an address like news@example.com',
      }),
      z.strictObject({
        start: localDate.describe(
          'The first day of the warm-up: a TOML date (start = 2026-12-01) or the same in quotes; days are UTC days. Before it, day 1 applies.',
        ),
        schedule: z
          .array(z.number().int().min(1))
          .min(1)
          .max(366)
          .refine((a) => a.every((n, i) => i === 0 || n >= (a[i - 1] ?? 0)), {
            message: 'goes down; each day may allow as many messages as the day before or more',
          })
          .default(DEFAULT_WARMUP_SCHEDULE)
          .describe(
            'Messages a day to each destination on day 1, 2, 3 and so on; after the last day there is no limit. A destination is a mailbox provider (google, microsoft, yahoo, apple), else the recipient domain.',
          ),
      }),
    )
    .default({})
    .meta({ examples: [{ 'example.com': { start: '2026-12-01' } }] })
    .describe(
      'Warm-up for a new sending domain or address, a table each: [warmup."example.com"] with start = 2026-12-01. Its mail to each destination is held to the day\'s number of messages; the rest waits in the queue for the next day (`posta status` shows the day and the counts).',
    ),
  dashboard: z
    .strictObject({
      https: z
        .boolean()
        .default(false)
        .describe(
          'Serve the dashboard on the [listen] https listener too, at https://HOSTNAME/ (same login, session cookies marked Secure). Off: only the loopback http listener has it.',
        ),
    })
    .prefault({})
    .describe(
      'The dashboard (log in with `posta admin password` or `posta admin link`); it is always on the [listen] http listener.',
    ),
  storage: z
    .strictObject({
      url: z
        .union([
          z.literal(''),
          z
            .string()
            .regex(/^postgres(ql)?:\/\/[^\s]+$/, {
              message: 'is not a postgres:// URL (postgres://USER@HOST:PORT/DATABASE)',
            })
            .refine((s) => !hasPassword(s), {
              message:
                'holds a password; posta.toml is meant to be committed, so give the password in password_file or $POSTA_STORAGE_PASSWORD instead',
            }),
        ])
        .default('')
        .describe(
          'The queue on PostgreSQL, shared by every posta node that names the same database: "postgres://USER@HOST:PORT/DATABASE", without the password. "": the queue in SQLite under data_dir (one node).',
        ),
      password_file: z
        .string()
        .default('')
        .describe(
          "File holding the database user's password, relative to this folder; keep it out of git. Else $POSTA_STORAGE_PASSWORD, else none (a trusted or peer login).",
        ),
      node: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, {
          message: 'is not a node name: letters, digits, ".", "_" and "-", at most 63',
        })
        .optional()
        .describe(
          "This node's name on the shared queue, one running posta per name; default: the machine's host name.",
        ),
      lease: z
        .number()
        .int()
        .min(2)
        .max(3600)
        .default(30)
        .describe(
          'Seconds a node may go without a heartbeat before the other nodes take its claimed mail back (it is sent again, and counted as maybe sent twice).',
        ),
    })
    .prefault({})
    .describe(
      'Where the queue lives. Off by default: SQLite in data_dir. With url set, the queue is in PostgreSQL and several posta nodes can share it.',
    ),
  dns: z
    .strictObject({
      servers: endpoints(
        [],
        'Resolvers to ask instead of the system ones, as "ADDRESS:PORT". Empty: use /etc/resolv.conf.',
        '53',
        ['127.0.0.1:53', '[::1]:53'],
      ),
    })
    .prefault({})
    .describe('DNS resolution.'),
});

export type UserConfig = z.input<typeof ConfigSchema>;
export type ParsedConfig = z.output<typeof ConfigSchema>;
