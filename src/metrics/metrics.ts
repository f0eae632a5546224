/**
 * Prometheus metrics (prom-client, text format on GET /metrics of the http
 * listener). One registry per server, passed to what counts; nothing global.
 *
 * Recipient domains are reported by class (domain-class.ts), never by name.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { domainClass, type DomainClass } from './domain-class.ts';

export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Counter({
    name: 'posta_connections_total',
    help: 'SMTP connections accepted, by listener (smtp, submission, submissions).',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'posta_auth_failures_total',
    help: 'Failed AUTH attempts on the submission listeners.',
    registers: [this.registry],
  });
  readonly accepted = new Counter({
    name: 'posta_messages_accepted_total',
    help: 'Messages accepted into the queue (a 250 after DATA), by source.',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'posta_deliveries_total',
    help: 'Delivery attempts per recipient, by outcome (delivered, deferred, bounced, expired) and recipient domain class.',
    labelNames: ['outcome', 'domain_class'] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: 'posta_delivery_latency_seconds',
    help: 'Time from acceptance to delivery, per delivered recipient.',
    labelNames: ['domain_class'] as const,
    buckets: [0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 14400, 86400],
    registers: [this.registry],
  });

  /** Gauges read at scrape time. */
  constructor(read: {
    queue: () => Promise<{ messages: number; oldestSeconds: number }>;
    certificateExpiry: () => number;
    renewalFailures: () => number;
  }) {
    const gauge = (name: string, help: string, value: () => number | Promise<number>) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        async collect() {
          this.set(await value());
        },
      });
    gauge(
      'posta_queue_messages',
      'Messages in the queue with recipients still to deliver.',
      async () => (await read.queue()).messages,
    );
    gauge(
      'posta_queue_oldest_seconds',
      'Age of the oldest message in the queue.',
      async () => (await read.queue()).oldestSeconds,
    );
    gauge(
      'posta_certificate_expiry_timestamp_seconds',
      'When the certificate in use expires (Unix time).',
      read.certificateExpiry,
    );
    gauge(
      'posta_certificate_renewal_failures',
      'ACME certificate orders that failed in a row since the last one that succeeded (0: all is well).',
      read.renewalFailures,
    );
    collectDefaultMetrics({ register: this.registry, prefix: 'posta_' });
  }
}
