/**
 * The metrics of a server without an http listener: nobody can scrape them,
 * so nothing is counted and prom-client is never loaded.
 */
import type { Metrics } from './metrics.ts';

const none = { inc() {}, observe() {} };

/** Only the counters the SMTP server and the scheduler use; /metrics is never served. */
export const noMetrics = {
  connections: none,
  authFailures: none,
  accepted: none,
  deliveries: none,
  latency: none,
} as unknown as Metrics;
