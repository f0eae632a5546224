/**
 * Webhooks: the events (events.ts) POSTed to the endpoints of posta.toml's
 * [webhooks.NAME] tables, in order, at least once.
 *
 * - The events table is the durable outbox: an event exists once its outcome
 *   is committed, and each endpoint keeps a cursor (the last event it took,
 *   in webhook_state), moved on only after a 2xx. So an event owed when
 *   posta is killed is sent after the restart; one sent just before a crash
 *   may be sent again (consumers see the same MessageId and event).
 * - An endpoint first seen starts at the newest event (no history flood);
 *   an SNS one gets a SubscriptionConfirmation at each start until its
 *   SubscribeURL (GET /sns/confirm on posta's listeners) marks it
 *   confirmed. Notifications do not wait for it. A notification keeps its
 *   MessageId across attempts, as SNS's do.
 * - A URL with user:password@ sends them as HTTP basic auth, and they never
 *   reach the log.
 * - A failing endpoint (an error, a timeout of 15 s, a non-2xx) is retried
 *   with back-off (2 s doubling to 10 min); the event it is stuck on is
 *   dropped after a day of failures (each later event gets its own day),
 *   a stop of posta is no failure, and the calls are logged
 *   (webhook_log, `posta webhooks log`).
 * - Formats: "sns" (sns.ts) and "posta": the SES event JSON as the body,
 *   with `Posta-Signature: t=UNIX,v1=HEX`, HEX the HMAC-SHA256 of
 *   "UNIX.BODY" with the endpoint's secret (`posta webhooks secret NAME`).
 *
 * Tables (queue.db): webhook_state(endpoint, last_event, failures,
 * failing_since, next_attempt, confirmed, token, secret);
 * webhook_log(id, endpoint, event, at, status, error, ms).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { domainOf } from '../address/address.ts';
import { prepared, type Db } from '../db/db.ts';
import type { WebhookConfig } from '../config/load.ts';
import type { Logger } from '../log/log.ts';
import { lastEventId, listEvents, type StoredEvent } from './events.ts';
import { sesEvent } from './ses-json.ts';
import { snsEnvelope, type SnsSigner } from './sns.ts';

const POLL_MS = 1000;
const TIMEOUT_MS = 15_000;
const GIVE_UP_MS = 86_400_000;
const MAX_BACKOFF_MS = 600_000;

export interface State {
  endpoint: string;
  last_event: number;
  failures: number;
  failing_since: number | null;
  next_attempt: number;
  confirmed: number;
  token: string;
  secret: string;
}

export interface WebhookOptions {
  db: Db;
  hooks: readonly WebhookConfig[];
  /** https://HOSTNAME: where SigningCertURL, SubscribeURL and UnsubscribeURL point. */
  base: string;
  signer: SnsSigner | null;
  log: Logger;
}

export function topicArn(name: string): string {
  return `arn:aws:sns:posta:000000000000:${name}`;
}

/** The endpoint's row, made (at the newest event, with a new token and secret) when missing. */
export function webhookState(db: Db, name: string): State {
  prepared(
    db,
    `INSERT OR IGNORE INTO webhook_state (endpoint, last_event, failures, next_attempt, confirmed, token, secret)
     VALUES (?, ?, 0, 0, 0, ?, ?)`,
  ).run(
    name,
    lastEventId(db),
    randomBytes(32).toString('hex'),
    randomBytes(24).toString('base64url'),
  );
  return prepared(db, 'SELECT * FROM webhook_state WHERE endpoint = ?').get(
    name,
  ) as unknown as State;
}

export interface LogEntry {
  endpoint: string;
  event: number | null;
  at: number;
  status: number | null;
  error: string | null;
  ms: number;
}

export function webhookLog(db: Db, endpoint?: string, limit = 100): LogEntry[] {
  const rows = prepared(
    db,
    `SELECT endpoint, event, at, status, error, ms FROM webhook_log
      WHERE ? IS NULL OR endpoint = ? ORDER BY id DESC LIMIT ?`,
  ).all(endpoint ?? null, endpoint ?? null, limit);
  return (rows as unknown as LogEntry[]).reverse();
}

/** The calls made for one message's events, oldest first. */
export function webhookLogOfMessage(db: Db, message: string): LogEntry[] {
  return prepared(
    db,
    `SELECT endpoint, event, at, status, error, ms FROM webhook_log
      WHERE event IN (SELECT id FROM events WHERE message = ?) ORDER BY id`,
  ).all(message) as unknown as LogEntry[];
}

export class Webhooks {
  private readonly o: WebhookOptions;
  private timer: NodeJS.Timeout | null = null;
  /** The round in progress per endpoint: one at a time, so events go out in order. */
  private readonly running = new Map<string, Promise<void>>();
  private readonly inFlight = new Set<AbortController>();
  /** SNS endpoints sent a SubscriptionConfirmation since this start. */
  private readonly asked = new Set<string>();
  private stopped = false;

  constructor(o: WebhookOptions) {
    this.o = o;
  }

  start(): void {
    if (this.o.hooks.length === 0) return;
    // the state rows once, at the newest event for endpoints new to this server
    for (const h of this.o.hooks) webhookState(this.o.db, h.name);
    this.timer = setInterval(() => this.kick(), POLL_MS);
    this.kick();
  }

  /** Stops polling, cuts calls in flight short and waits for their rounds to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const c of this.inFlight) c.abort();
    await Promise.allSettled(this.running.values());
  }

  kick(): void {
    for (const h of this.o.hooks) {
      if (this.running.has(h.name) || this.stopped) continue;
      const round = this.pump(h)
        .catch((err: Error) =>
          this.o.log.error({ webhook: h.name, err: err.message }, 'webhook round failed'),
        )
        .finally(() => this.running.delete(h.name));
      this.running.set(h.name, round);
    }
  }

  /**
   * GET /sns/confirm?endpoint=NAME&Token=T (the SubscribeURL) and
   * /sns/unsubscribe (the UnsubscribeURL, refused); true when answered.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    if (req.method === 'GET' && url.pathname === '/sns/unsubscribe') {
      // the UnsubscribeURL of notifications: the endpoints are posta.toml's to end
      res
        .writeHead(403, { 'content-type': 'text/plain' })
        .end(
          "posta's webhooks are declared in posta.toml: remove the [webhooks.NAME] table there to stop them.\n",
        );
      return true;
    }
    if (req.method !== 'GET' || url.pathname !== '/sns/confirm') return false;
    const name = url.searchParams.get('endpoint') ?? '';
    const hook = this.o.hooks.find((h) => h.name === name);
    const st = hook && webhookState(this.o.db, name);
    if (!st || url.searchParams.get('Token') !== st.token) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('No such subscription\n');
      return true;
    }
    prepared(this.o.db, 'UPDATE webhook_state SET confirmed = 1 WHERE endpoint = ?').run(name);
    this.o.log.info({ webhook: name }, 'webhook subscription confirmed');
    res
      .writeHead(200, { 'content-type': 'text/xml' })
      .end(
        `<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><ConfirmSubscriptionResult><SubscriptionArn>${topicArn(name)}:${st.token.slice(0, 36)}</SubscriptionArn></ConfirmSubscriptionResult></ConfirmSubscriptionResponse>`,
      );
    return true;
  }

  private async confirmation(h: WebhookConfig, st: State): Promise<void> {
    const signer = this.o.signer;
    if (!signer) return;
    const subscribeUrl = `${this.o.base}/sns/confirm?endpoint=${encodeURIComponent(h.name)}&Token=${st.token}`;
    const m = snsEnvelope(signer, {
      type: 'SubscriptionConfirmation',
      topicArn: topicArn(h.name),
      message: `You have chosen to subscribe to the topic ${topicArn(h.name)}.\nTo confirm the subscription, visit the SubscribeURL included in this message.`,
      base: this.o.base,
      version: h.signatureVersion,
      subscribeUrl,
      token: st.token,
    });
    await this.post(h, null, JSON.stringify(m), snsHeaders(h, m.Type, m.MessageId));
  }

  /** Sends what is owed to `h`, in order, until it fails or nothing is left. */
  private async pump(h: WebhookConfig): Promise<void> {
    const first = webhookState(this.o.db, h.name);
    if (h.format === 'sns' && !first.confirmed && !this.asked.has(h.name)) {
      // once per start until confirmed: a failed one is asked again next time
      this.asked.add(h.name);
      await this.confirmation(h, first);
    }
    for (;;) {
      const st = webhookState(this.o.db, h.name);
      if (Date.now() < st.next_attempt || this.stopped) return;
      // a cursor past the newest event (a database restored from an older
      // backup) would skip every new one: start again from the newest
      const newest = lastEventId(this.o.db);
      if (st.last_event > newest) this.advance(h.name, newest, true);
      const batch = listEvents(this.o.db, { after: st.last_event, limit: 100 });
      if (batch.length === 0) return;
      let skipped = 0;
      for (const e of batch) {
        if (this.stopped) return;
        if (!this.wanted(h, e)) {
          skipped = e.id;
          continue;
        }
        if (skipped) this.advance(h.name, skipped);
        skipped = 0;
        // the state as it is now: advance() resets the failures of the event before
        if (!(await this.deliver(h, e, webhookState(this.o.db, h.name)))) return;
        this.advance(h.name, e.id);
      }
      if (skipped) this.advance(h.name, skipped);
    }
  }

  private wanted(h: WebhookConfig, e: StoredEvent): boolean {
    if (!h.events.includes(e.type)) return false;
    if (h.domains.length === 0 && h.keys.length === 0) return true;
    const m = prepared(this.o.db, 'SELECT sender, api_key FROM mail_log WHERE message = ?').get(
      e.message,
    ) as { sender: string; api_key: string | null } | undefined;
    if (!m) return false;
    if (h.domains.length && !h.domains.includes(domainOf(m.sender))) return false;
    if (h.keys.length && (m.api_key === null || !h.keys.includes(m.api_key))) return false;
    return true;
  }

  /** The cursor moves on to `id` (back too, with `reset`), and the failures are forgotten. */
  private advance(name: string, id: number, reset = false): void {
    prepared(
      this.o.db,
      `UPDATE webhook_state SET last_event = ?, failures = 0, failing_since = NULL, next_attempt = 0
        WHERE endpoint = ? AND (last_event < ? OR ?)`,
    ).run(id, name, id, Number(reset));
  }

  /** One event to one endpoint; false when it failed (and is to be retried later). */
  private async deliver(h: WebhookConfig, e: StoredEvent, st: State): Promise<boolean> {
    const event = JSON.stringify(sesEvent(this.o.db, e));
    let body: string;
    let headers: Record<string, string>;
    if (h.format === 'sns' && this.o.signer) {
      const m = snsEnvelope(this.o.signer, {
        type: 'Notification',
        // the same on every attempt, as SNS keeps it: consumers drop repeats by it
        messageId: stableUuid(`${h.name}:${e.id}`),
        topicArn: topicArn(h.name),
        message: event,
        base: this.o.base,
        version: h.signatureVersion,
        unsubscribeUrl: `${this.o.base}/sns/unsubscribe?endpoint=${encodeURIComponent(h.name)}`,
      });
      body = JSON.stringify(m);
      headers = snsHeaders(h, m.Type, m.MessageId);
    } else {
      body = event;
      const t = Math.floor(Date.now() / 1000);
      const mac = createHmac('sha256', st.secret).update(`${t}.${body}`).digest('hex');
      headers = {
        'content-type': 'application/json',
        'user-agent': 'posta-webhooks',
        'posta-event-id': String(e.id),
        'posta-signature': `t=${t},v1=${mac}`,
      };
    }
    if (await this.post(h, e.id, body, headers)) return true;
    // cut short by stop(): not the endpoint's failure
    if (this.stopped) return false;
    const now = Date.now();
    const since = st.failing_since ?? now;
    if (now - since >= GIVE_UP_MS) {
      this.o.log.error(
        { webhook: h.name, event: e.id },
        'webhook event dropped after a day of failures',
      );
      return true;
    }
    const wait = Math.min(2000 * 2 ** st.failures, MAX_BACKOFF_MS);
    prepared(
      this.o.db,
      'UPDATE webhook_state SET failures = failures + 1, failing_since = ?, next_attempt = ? WHERE endpoint = ?',
    ).run(since, now + wait, h.name);
    return false;
  }

  private async post(
    h: WebhookConfig,
    event: number | null,
    body: string,
    headers: Record<string, string>,
  ): Promise<boolean> {
    const started = Date.now();
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    this.inFlight.add(abort);
    let status: number | null = null;
    let error: string | null = null;
    const target = withoutCredentials(h.url);
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        body,
        headers: { ...headers, ...target.headers },
        signal: abort.signal,
        redirect: 'manual',
      });
      status = res.status;
      await res.body?.cancel();
      if (status < 200 || status > 299) error = `HTTP ${status}`;
    } catch (err) {
      const cause = ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
      error = abort.signal.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : cause;
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(abort);
    }
    if (this.stopped && error !== null) return false; // cut short by stop(): nothing to record
    const ms = Date.now() - started;
    prepared(
      this.o.db,
      'INSERT INTO webhook_log (endpoint, event, at, status, error, ms) VALUES (?, ?, ?, ?, ?, ?)',
    ).run(h.name, event, started, status, error, ms);
    if (error)
      this.o.log.warn({ webhook: h.name, event, status, err: error }, 'webhook call failed');
    return error === null;
  }
}

/**
 * A URL with user:password@ (django-anymail's basic auth) as fetch takes it:
 * the credentials in an Authorization header, as SNS sends them, and never in
 * an error text or the log.
 */
export function withoutCredentials(url: string): { url: string; headers: Record<string, string> } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url, headers: {} };
  const basic = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = '';
  u.password = '';
  return {
    url: u.toString(),
    headers: { authorization: `Basic ${Buffer.from(basic).toString('base64')}` },
  };
}

/** A UUID made from `text` (its SHA-256, shaped as version 5 is): the same text, the same id. */
function stableUuid(text: string): string {
  const h = createHash('sha256').update(text).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function snsHeaders(h: WebhookConfig, type: string, id: string): Record<string, string> {
  return {
    'content-type': 'text/plain; charset=UTF-8',
    'user-agent': 'Amazon Simple Notification Service Agent',
    'x-amz-sns-message-type': type,
    'x-amz-sns-message-id': id,
    'x-amz-sns-topic-arn': topicArn(h.name),
    ...(type === 'Notification'
      ? { 'x-amz-sns-subscription-arn': `${topicArn(h.name)}:posta` }
      : {}),
  };
}

/** Calls older than `before` leave the log. */
export function pruneWebhookLog(db: Db, before: number): void {
  prepared(db, 'DELETE FROM webhook_log WHERE at < ?').run(before);
}
