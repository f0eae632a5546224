/**
 * Loading posta.toml: defaults <- file -> one frozen ResolvedConfig that the
 * rest of the program is handed (never imported as a global). Paths come out
 * absolute; listen addresses come out parsed. Validation errors name the file,
 * the key, the bad value and what is allowed.
 */
import { readFile, readdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname as machineName } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import { PostaError } from '../errors.ts';
import { formatAddress, parseAddress, parseDomain } from '../address/address.ts';
import { isLoopback } from '../address/ip.ts';
import { ConfigSchema, dateText, type ParsedConfig } from './schema.ts';
import { formatEndpoint, parseEndpoint, parseHostPort, type Endpoint } from './endpoint.ts';
import type { StsMode } from '../mtasts/policy.ts';
import { noConfigFolder } from './paths.ts';

export const CONFIG_FILE = 'posta.toml';

export interface ResolvedConfig {
  /** The config folder, absolute. */
  readonly dir: string;
  readonly file: string;
  readonly hostname: string;
  readonly dataDir: string;
  readonly addresses: readonly string[];
  readonly listen: Readonly<Record<keyof ParsedConfig['listen'], readonly Endpoint[]>>;
  readonly tls: { readonly cert: string; readonly key: string } | null;
  readonly acme: AcmeConfig | null;
  readonly limits: Readonly<{
    messageSize: number;
    headerSize: number;
    dataMemory: number;
    recipients: number;
    connections: number;
    connectionsPerIp: number;
    connectionsPerPrefix: number;
    commandTimeoutMs: number;
    preMailTimeoutMs: number;
    stressTimeoutMs: number;
    sessionTimeoutMs: number;
    errorsPerSession: number;
  }>;
  readonly mtaSts: { readonly mode: StsMode; readonly maxAge: number };
  readonly dns: { readonly servers: readonly Endpoint[] };
  readonly dkim: { readonly rotationCheckMs: number };
  readonly delivery: DeliveryConfig;
  readonly inbound: {
    readonly checks: boolean;
    readonly dmarcReject: boolean;
    readonly dnsbl: readonly string[];
  };
  /** Local domains: one folder each under domains/, as A-labels. */
  readonly domains: readonly string[];
  /** [webhooks.NAME] tables, by name. */
  readonly webhooks: readonly WebhookConfig[];
  readonly bulk: {
    /** Sending domains (A-labels) whose mail gets one-click unsubscribe. */
    readonly unsubscribeDomains: readonly string[];
    readonly unsubscribeKeys: readonly string[];
    /** Feedback-ID's SenderId; '' for none. */
    readonly feedbackId: string;
  };
  /** [warmup."SENDER"] tables. */
  readonly warmup: readonly WarmupConfig[];
  /** [dashboard] https: the dashboard on the https listener too. */
  readonly dashboard: { readonly https: boolean };
  /** [storage]: where the queue lives. */
  readonly storage: StorageConfig;
}

/** The queue's engine: SQLite in dataDir (url null), or a PostgreSQL database shared by nodes. */
export interface StorageConfig {
  /** postgres://..., without the password; null: SQLite. */
  readonly url: string | null;
  /** Absolute path of the password file. */
  readonly passwordFile: string | undefined;
  /** This node's name on the shared queue. */
  readonly node: string;
  readonly leaseMs: number;
}

/** A warm-up (warmup/schedule.ts): a sending domain's or address's limits per day. */
export interface WarmupConfig {
  /** A domain (an A-label) or an address (lower case, its domain an A-label). */
  readonly sender: string;
  /** The first day, "YYYY-MM-DD" (UTC). */
  readonly start: string;
  /** Messages a day per destination on day 1, 2, ...; none after the last. */
  readonly schedule: readonly number[];
}

export interface WebhookConfig {
  readonly name: string;
  readonly url: string;
  readonly format: 'sns' | 'posta';
  readonly events: readonly string[];
  /** Sending domains (A-labels); empty: all. */
  readonly domains: readonly string[];
  readonly keys: readonly string[];
  readonly signatureVersion: 1 | 2;
}

export interface AcmeConfig {
  readonly email: string;
  readonly directory: string;
  /** The names to cover, hostname first. */
  readonly names: readonly string[];
  readonly challenge: 'http-01' | 'tls-alpn-01' | 'dns-01';
  readonly httpListen: readonly Endpoint[];
  /** Absolute path, or undefined. */
  readonly dnsHook: string | undefined;
}

export type IpFamily = ParsedConfig['delivery']['ip_family'];

export interface DeliveryConfig {
  readonly concurrency: number;
  readonly connectionsPerDomain: number;
  /** 0: no limit. */
  readonly messagesPerMinutePerDomain: number;
  /** Recipient domain (lower case) → its own limits, from [delivery.destinations]. */
  readonly destinations: ReadonlyMap<string, DestinationLimits>;
  readonly ipFamily: IpFamily;
  readonly sourceIpv4: string | undefined;
  readonly sourceIpv6: string | undefined;
  readonly firstRetryMs: number;
  readonly maxRetryMs: number;
  readonly lifetimeMs: number;
  /** 0: never. */
  readonly delayWarningMs: number;
  readonly connectTimeoutMs: number;
  /** The longest wait for one whole reply; each command's RFC 5321 §4.5.3.2 time when shorter. */
  readonly replyTimeoutMs: number;
  /** The ceiling on one delivery attempt, all hosts included. */
  readonly attemptTimeoutMs: number;
  readonly mtaSts: boolean;
  readonly relay: RelayConfig | null;
}

export interface DestinationLimits {
  readonly connections: number;
  /** 0: no limit. */
  readonly messagesPerMinute: number;
}

/** The limits for mail to `domain`: its [delivery.destinations] table, else the defaults. */
export function destinationLimits(d: DeliveryConfig, domain: string): DestinationLimits {
  return (
    d.destinations.get(domain) ?? {
      connections: d.connectionsPerDomain,
      messagesPerMinute: d.messagesPerMinutePerDomain,
    }
  );
}

export interface RelayConfig {
  readonly host: string;
  readonly port: number;
  readonly tls: 'starttls' | 'tls';
  readonly username: string | undefined;
  /** Absolute path of the password file. */
  readonly passwordFile: string | undefined;
  /** Recipient domains to relay; empty: all mail. */
  readonly domains: readonly string[];
}

/** The config folder from --dir, else $POSTA_DIR, else ./posta. */
export function configDir(flag: string | undefined): string {
  return resolve(flag ?? (process.env.POSTA_DIR || 'posta')); // an empty $POSTA_DIR is unset
}

export async function loadConfig(dir: string): Promise<ResolvedConfig> {
  const file = join(dir, CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw noConfigFolder(dir);
    throw new PostaError(`Cannot read ${file}: ${(err as Error).message}.`);
  }
  const config = resolveConfig(dir, file, parseConfigText(file, text), await listDomains(dir));
  checkListenersApart(config);
  checkHttpOnLoopback(config);
  checkBulk(config);
  checkSharedQueue(config);
  return config;
}

/**
 * One-click unsubscribe (RFC 8058 §3.1) needs an https URL: a switch that
 * turns it on without the https listener is refused, not half-done; and
 * each domain named must be one of ours.
 */
function checkBulk(c: ResolvedConfig): void {
  const b = c.bulk;
  const key = b.unsubscribeDomains.length ? 'unsubscribe_domains' : 'unsubscribe_keys';
  if ((b.unsubscribeDomains.length || b.unsubscribeKeys.length) && !c.listen.https.length) {
    throw new PostaError(
      `${c.file}: [bulk] ${key} asks for one-click unsubscribe, whose https URL needs the https listener, but [listen] https is empty; listen on port 443 (https = ["0.0.0.0:443", "[::]:443"]) or empty ${key}.`,
    );
  }
  for (const d of b.unsubscribeDomains) {
    if (!c.domains.includes(d)) {
      throw new PostaError(
        `${c.file}: [bulk] unsubscribe_domains names "${d}", which is not a domain of this server (${c.domains.join(', ') || 'none'}); add it with \`posta init ${d}\` or remove it.`,
      );
    }
  }
}

export function parseConfigText(file: string, text: string): ParsedConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    const where = err instanceof TomlError ? ` at line ${err.line}, column ${err.column}` : '';
    const why = (err as Error).message.split('\n')[0];
    throw new PostaError(`${file} is not valid TOML${where}: ${why}; fix the file and try again.`);
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new PostaError(result.error.issues.map((i) => describeIssue(file, raw, i)).join('\n'));
  }
  return result.data;
}

function describeIssue(file: string, raw: unknown, issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const where =
      path.length === 0 ? 'the top level' : path.length === 1 ? `[${path[0]}]` : keyName(path);
    const allowed = allowedKeys(path);
    return `${file}: unknown key ${issue.keys.map((k) => `"${k}"`).join(', ')} in ${where}; allowed keys there: ${allowed}.`;
  }
  const key = keyName(path);
  if (issue.code === 'invalid_key') {
    const why = issue.issues.map((i) => i.message).join('; ');
    // [delivery.destinations.outlook.com] unquoted is two nested tables.
    const example =
      path[0] === 'warmup'
        ? 'the sender in quotes, as in [warmup."example.com"]'
        : 'the domain in quotes, as in [delivery.destinations."outlook.com"]';
    return `${file}: ${key}: ${JSON.stringify(path.at(-1))} ${why}; write ${example}.`;
  }
  const value = valueAt(raw, path);
  if (value === undefined) return `${file}: ${key} is required; add it to the file.`;
  const shown = JSON.stringify(value);
  if (issue.code === 'invalid_type') {
    return `${file}: ${key} = ${shown} has the wrong type; it must be ${issue.expected === 'array' ? 'a list like ["a", "b"]' : `a ${issue.expected}`}.`;
  }
  return `${file}: ${key} = ${shown} ${issueText(issue)}.`;
}

/** zod's own wording ("Too small: expected number to be >=1") as a sentence a user reads. */
function issueText(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'too_small':
      return issue.origin === 'number' || issue.origin === 'int'
        ? `is too small; it must be at least ${String(issue.minimum)}`
        : `is too short; it needs at least ${String(issue.minimum)}`;
    case 'too_big':
      return issue.origin === 'number' || issue.origin === 'int'
        ? `is too large; it must be at most ${String(issue.maximum)}`
        : `is too long; it allows at most ${String(issue.maximum)}`;
    case 'invalid_value':
      return `is not allowed; it must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    default:
      return issue.message;
  }
}

function keyName(path: string[]): string {
  // "[listen] smtp[1]" reads like the file does.
  const [first, ...rest] = path;
  if (first === 'delivery' && rest[0] === 'destinations' && rest[1] !== undefined) {
    const table = `[delivery.destinations.${JSON.stringify(rest[1])}]`;
    return rest.length > 2 ? `${table} ${rest.slice(2).join('.')}` : table;
  }
  if (first === 'warmup' && rest[0] !== undefined) {
    const table = `[warmup.${JSON.stringify(rest[0])}]`;
    const [key, ...idx] = rest.slice(1);
    return key === undefined ? table : `${table} ${key}${idx.map((i) => `[${i}]`).join('')}`;
  }
  const sectionKeys = new Set([
    'listen',
    'tls',
    'acme',
    'dns',
    'dkim',
    'mta_sts',
    'limits',
    'delivery',
    'inbound',
    'bulk',
  ]);
  if (first !== undefined && sectionKeys.has(first) && rest.length > 0) {
    const [key, ...idx] = rest;
    return `[${first}] ${key}${idx.map((i) => `[${i}]`).join('')}`;
  }
  return path.map((p, i) => (i === 0 ? p : `[${p}]`)).join('');
}

interface SchemaNode {
  shape?: Record<string, unknown>;
  /** A record's, such as [delivery.destinations]: the schema of each of its tables. */
  valueType?: unknown;
  unwrap?: () => unknown;
}

function allowedKeys(path: string[]): string {
  let node = unwrapDefaults(ConfigSchema);
  for (const p of path) {
    const next = node?.shape ? node.shape[p] : node?.valueType;
    if (next === undefined) break;
    node = unwrapDefaults(next);
  }
  return Object.keys(node?.shape ?? {}).join(', ');
}

/** Through .default(), .optional() and .prefault() to the schema they wrap. */
function unwrapDefaults(schema: unknown): SchemaNode | undefined {
  let s = schema as SchemaNode | undefined;
  for (let i = 0; i < 4 && s?.unwrap && !s.shape; i++) s = s.unwrap() as SchemaNode;
  return s;
}

function valueAt(raw: unknown, path: string[]): unknown {
  let v = raw;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

/**
 * Each address and port is listened on once: the same one under two keys, or
 * an address beside the wildcard of its family on the same port ("0.0.0.0:25"
 * and "127.0.0.1:25"), would fail at start as if another program held it.
 */
function checkListenersApart(c: ResolvedConfig): void {
  // One spelling per address ("::0" is "::", "0:0::1" is "::1"), as the URL parser writes it.
  const canonical = (e: Endpoint) =>
    isIP(e.host) === 6 ? { ...e, host: new URL(`http://[${e.host}]/`).hostname.slice(1, -1) } : e;
  const all: { key: string; e: Endpoint }[] = [
    ...Object.entries(c.listen).flatMap(([k, list]) =>
      list.map((e) => ({ key: `[listen] ${k}`, e })),
    ),
    ...(c.acme?.challenge === 'http-01'
      ? c.acme.httpListen.map((e) => ({ key: '[acme] http_listen', e }))
      : []),
  ]
    .filter((x) => x.e.port !== 0)
    .map((x) => ({ ...x, e: canonical(x.e) }));
  const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
  for (const [i, a] of all.entries()) {
    for (const b of all.slice(i + 1)) {
      if (a.e.port !== b.e.port || isIP(a.e.host) !== isIP(b.e.host)) continue;
      const [x, y] = [formatEndpoint(a.e), formatEndpoint(b.e)];
      if (x === y) {
        throw new PostaError(
          `${c.file}: ${a.key} and ${b.key} both list "${x}"; each address and port can be listened on once.`,
        );
      }
      if (wildcard(a.e.host) || wildcard(b.e.host)) {
        const [w, o] = wildcard(a.e.host) ? [a, b] : [b, a];
        throw new PostaError(
          `${c.file}: ${w.key} "${formatEndpoint(w.e)}" already takes every address on port ${w.e.port}, so ${o.key} "${formatEndpoint(o.e)}" cannot be had too; drop one of them.`,
        );
      }
    }
  }
}

/**
 * The http listener carries the dashboard's login and session cookies and the
 * APIs' keys in the clear: only loopback may have it (applications and people
 * elsewhere use [listen] https, or ssh -L to it).
 */
function checkHttpOnLoopback(c: ResolvedConfig): void {
  for (const e of c.listen.http) {
    if (isLoopback(e.host)) continue;
    throw new PostaError(
      `${c.file}: [listen] http "${formatEndpoint(e)}" is not on loopback, and plain HTTP would carry the dashboard's logins and the APIs' keys unencrypted over the network; listen on 127.0.0.1 or [::1] and use [listen] https (or ssh -L) from other hosts.`,
    );
  }
}

/**
 * On PostgreSQL the events of the queue are written to the database, but the
 * webhooks still read the node's own SQLite events: they would send nothing,
 * and the endpoint would never know. Refused until they read the store.
 */
function checkSharedQueue(c: ResolvedConfig): void {
  if (!c.storage.url || c.webhooks.length === 0) return;
  throw new PostaError(
    `${c.file}: [webhooks.${c.webhooks[0]?.name}] cannot be used with [storage] url yet: on PostgreSQL the events are in the database, which webhooks do not read yet, so they would send nothing; remove one of them.`,
  );
}

function resolveConfig(
  dir: string,
  file: string,
  c: ParsedConfig,
  domains: string[],
): ResolvedConfig {
  const abs = (p: string) => (isAbsolute(p) ? p : join(dir, p));
  const eps = (list: string[]) => list.map((s) => parseEndpoint(s) as Endpoint);
  const hostname = parseDomain(c.hostname);
  return deepFreeze({
    dir,
    file,
    hostname: hostname.ok ? hostname.value : c.hostname,
    dataDir: abs(c.data_dir),
    addresses: c.addresses,
    listen: {
      smtp: eps(c.listen.smtp),
      submission: eps(c.listen.submission),
      submissions: eps(c.listen.submissions),
      http: eps(c.listen.http),
      https: eps(c.listen.https),
    },
    tls: c.tls ? { cert: abs(c.tls.cert), key: abs(c.tls.key) } : null,
    acme: c.acme
      ? {
          email: c.acme.email,
          directory: c.acme.directory,
          names: c.acme.names.length
            ? c.acme.names.map((n) => n.toLowerCase())
            : [hostname.ok ? hostname.value : c.hostname, ...domains.map((d) => `mta-sts.${d}`)],
          challenge: c.acme.challenge,
          httpListen: eps(c.acme.http_listen),
          dnsHook: c.acme.dns_hook ? abs(c.acme.dns_hook) : undefined,
        }
      : null,
    limits: {
      messageSize: c.limits.message_size,
      headerSize: c.limits.header_size,
      dataMemory: c.limits.data_memory,
      recipients: c.limits.recipients,
      connections: c.limits.connections,
      connectionsPerIp: c.limits.connections_per_ip,
      connectionsPerPrefix: c.limits.connections_per_prefix,
      commandTimeoutMs: c.limits.command_timeout * 1000,
      preMailTimeoutMs: c.limits.pre_mail_timeout * 1000,
      stressTimeoutMs: c.limits.stress_timeout * 1000,
      sessionTimeoutMs: c.limits.session_timeout * 1000,
      errorsPerSession: c.limits.errors_per_session,
    },
    mtaSts: { mode: c.mta_sts.mode, maxAge: c.mta_sts.max_age },
    dns: { servers: eps(c.dns.servers) },
    dkim: { rotationCheckMs: c.dkim.rotation_check * 1000 },
    webhooks: Object.entries(c.webhooks).map(([name, w]) => ({
      name,
      url: w.url,
      format: w.format,
      events: w.events,
      domains: w.domains.map((d) => {
        const p = parseDomain(d);
        return p.ok ? p.value : d.toLowerCase();
      }),
      keys: w.keys,
      signatureVersion: w.signature_version,
    })),
    delivery: resolveDelivery(file, c.delivery, abs),
    bulk: {
      unsubscribeDomains: c.bulk.unsubscribe_domains.map((d) => {
        const p = parseDomain(d);
        return p.ok ? p.value : d.toLowerCase();
      }),
      unsubscribeKeys: c.bulk.unsubscribe_keys,
      feedbackId: c.bulk.feedback_id,
    },
    warmup: warmups(file, c.warmup),
    dashboard: { https: c.dashboard.https },
    storage: {
      url: c.storage.url || null,
      passwordFile: c.storage.password_file ? abs(c.storage.password_file) : undefined,
      node:
        c.storage.node ??
        machineName()
          .replace(/[^A-Za-z0-9._-]/g, '-')
          .slice(0, 63),
      leaseMs: c.storage.lease * 1000,
    },
    inbound: {
      checks: c.inbound.checks,
      dmarcReject: c.inbound.dmarc_reject,
      dnsbl: c.inbound.dnsbl,
    },
    domains,
  });
}

function resolveDelivery(
  file: string,
  d: ParsedConfig['delivery'],
  abs: (p: string) => string,
): DeliveryConfig {
  const relay = d.relay ? (parseHostPort(d.relay) as Endpoint) : null;
  return {
    concurrency: d.concurrency,
    connectionsPerDomain: d.connections_per_domain,
    messagesPerMinutePerDomain: d.messages_per_minute_per_domain,
    destinations: destinations(file, d),
    ipFamily: d.ip_family,
    sourceIpv4: d.source_ipv4 || undefined,
    sourceIpv6: d.source_ipv6 || undefined,
    firstRetryMs: d.first_retry * 1000,
    maxRetryMs: d.max_retry * 1000,
    lifetimeMs: d.lifetime * 1000,
    delayWarningMs: d.delay_warning * 1000,
    connectTimeoutMs: d.connect_timeout * 1000,
    replyTimeoutMs: d.reply_timeout * 1000,
    attemptTimeoutMs: d.attempt_timeout * 1000,
    mtaSts: d.mta_sts,
    relay: relay && {
      host: relay.host,
      port: relay.port,
      tls: d.relay_tls,
      username: d.relay_username || undefined,
      passwordFile: d.relay_password_file ? abs(d.relay_password_file) : undefined,
      domains: d.relay_domains.map((x) => {
        const p = parseDomain(x);
        return p.ok ? p.value : x;
      }),
    },
  };
}

function destinations(file: string, d: ParsedConfig['delivery']): Map<string, DestinationLimits> {
  const out = new Map<string, DestinationLimits>();
  const written = new Map<string, string>();
  for (const [name, l] of Object.entries(d.destinations)) {
    const p = parseDomain(name);
    const domain = p.ok ? p.value : name.toLowerCase();
    const before = written.get(domain);
    if (before !== undefined) {
      throw new PostaError(
        `${file}: [delivery.destinations."${before}"] and [delivery.destinations."${name}"] are the same domain; keep one of them.`,
      );
    }
    written.set(domain, name);
    out.set(domain, {
      connections: l.connections ?? d.connections_per_domain,
      messagesPerMinute: l.messages_per_minute ?? d.messages_per_minute_per_domain,
    });
  }
  return out;
}

/** [warmup."SENDER"] tables in the one form delivery compares (address.ts); one per sender. */
function warmups(file: string, w: ParsedConfig['warmup']): WarmupConfig[] {
  const out = new Map<string, WarmupConfig>();
  const written = new Map<string, string>();
  for (const [name, t] of Object.entries(w)) {
    const a = name.includes('@') ? parseAddress(name) : null;
    const d = a ? null : parseDomain(name);
    const sender = a?.ok ? formatAddress(a.value) : d?.ok ? d.value : name.toLowerCase();
    const before = written.get(sender);
    if (before !== undefined) {
      throw new PostaError(
        `${file}: [warmup."${before}"] and [warmup."${name}"] are the same sender; keep one of them.`,
      );
    }
    written.set(sender, name);
    out.set(sender, { sender, start: dateText(t.start) ?? '', schedule: t.schedule });
  }
  return [...out.values()];
}

export async function listDomains(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(join(dir, 'domains'), { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isDirectory() && parseDomain(e.name).ok)
    .map((e) => e.name)
    .sort();
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
