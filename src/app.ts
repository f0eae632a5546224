/**
 * The composition root: build the running server's services from the
 * resolved config and start them in order; stop them in reverse (also when a
 * later one fails to start). No logic.
 */
import { PostaError } from './errors.ts';
import { useCompileCache, saveCompileCache } from './compile-cache.ts';
import type { ResolvedConfig } from './config/load.ts';
import { formatEndpoint } from './config/endpoint.ts';
import { Directory } from './domains/directory.ts';
import { watchConfigFile } from './config/watch.ts';
import { Spool } from './queue/spool.ts';
import type { CheckpointResult } from './queue/checkpoint.ts';
import { clearIncoming, MemoryBudget } from './smtp/data.ts';
import type { Logger, RecentErrors } from './log/log.ts';
import { certificateSource, type CertificateSource } from './tls/source.ts';
import { certificateCovers } from './tls/certs.ts';
import { startHttps } from './web/https.ts';
import { startHttp } from './web/http.ts';
import { lazyDashboard, type DashboardHandler } from './web/dashboard/lazy.ts';
import { allowedHosts } from './web/dashboard/guard.ts';
import { lazyApi, type ApiHandler } from './api/lazy.ts';
import { KeyStore } from './keys/keys.ts';
import { Quotas } from './keys/quota.ts';
import { sentLast24Hours } from './keys/usage.ts';
import { Webhooks } from './events/webhooks.ts';
import { complaintRatesEvery } from './events/complaint-rate.ts';
import { ReportBudget } from './reports/budget.ts';
import { loadSnsSigner, serveSnsCert } from './events/sns.ts';
import { startHttp01 } from './acme/http01.ts';
import { startSmtp, type Listener } from './smtp/server.ts';
import { createResolver, offlineResolver, type Resolver } from './dns/resolver.ts';
import { Srs, loadSrsSecret } from './srs/srs.ts';
import { poolVerifier } from './verify/pool.ts';
import { poolSigner } from './dkim/pool.ts';
import { SwitchLog } from './dkim/switches.ts';
import { startRotator, type Rotator } from './dkim/rotator.ts';
import { rotationLine } from './dkim/rotation.ts';
import { WorkerPool } from './workers/pool.ts';
import { StsPolicies } from './delivery/sts.ts';
import { MxTransport } from './delivery/mx.ts';
import { CaptureTransport } from './delivery/capture.ts';
import { Scheduler } from './delivery/scheduler.ts';
import { openQueue } from './store/open.ts';
import { Warmup } from './warmup/warmup.ts';
import type { Transport } from './delivery/transport.ts';
import { noMetrics } from './metrics/off.ts';
import { startControl, type Status } from './status/control.ts';
import { startLocalSubmission } from './submit/socket.ts';
import { VERSION } from './version.ts';
import { createBulk, httpsBase } from './unsubscribe/fields.ts';
import { loadUnsubscribeSecret } from './unsubscribe/token.ts';
import { unsubscribeHandler } from './unsubscribe/endpoint.ts';

export interface App {
  listeners: Listener[];
  spool: Spool;
  stop(): Promise<void>;
}

export interface AppOptions {
  log: Logger;
  /** The sandbox: deliveries are written here instead of sent, and DNS is never asked. */
  captureDir?: string;
  /** Where the logger keeps its last errors, for `posta status`. */
  errors?: RecentErrors;
}

export async function startApp(config: ResolvedConfig, opts: AppOptions): Promise<App> {
  const { log } = opts;
  if (config.domains.length === 0) {
    throw new PostaError(
      `${config.dir} has no domains; add one with \`posta init DOMAIN --dir ${config.dir}\`.`,
    );
  }
  // Everything the server writes (queue, certificates, captures) is its own:
  // the data folder is reachable by other users for the sendmail socket.
  process.umask(0o077);
  const stops: (() => unknown)[] = [];
  const stopAll = async () => {
    // Each stop runs even when an earlier one failed; the first failure is reported.
    let failure: Error | undefined;
    for (const stop of [...stops].reverse()) {
      try {
        await stop();
      } catch (err) {
        failure ??= err as Error;
      }
    }
    if (failure) throw failure;
  };
  try {
    const certs = await certificateSource(config, log);
    const cert = certs.store.current;
    if (config.tls && !certificateCovers(cert, config.hostname)) {
      log.warn(
        { names: cert.names, hostname: config.hostname },
        'the certificate does not cover hostname; clients that verify it will refuse TLS',
      );
    }
    const switches = await SwitchLog.open(config.dataDir);
    const directory = await Directory.load(config.dir, {
      switched: (domain, plan) => switches.get(domain, plan),
    });
    let rotator: Rotator | undefined;
    directory.watch(
      2000,
      (domains) => {
        log.info({ domains }, 'config folder reloaded');
        void rotator?.check(); // a new plan (posta dkim rotate) is checked at once
      },
      (err) =>
        log.error({ err: err.message }, 'config folder reload failed; keeping the previous state'),
    );
    stops.push(() => directory.stop());
    stops.push(await watchConfigFile(config.dir, log));
    const workers = new WorkerPool({ servers: opts.captureDir ? null : config.dns.servers });
    stops.push(() => workers.close());
    // stopped before the workers: it waits for a checkpoint running on one
    const spool = openSpool(config, workers, log);
    stops.push(() => spool.close());
    const queue = await openQueue(config.storage, spool, log);
    stops.push(() => queue.close());
    useCompileCache(config.dataDir);
    spool.sweep();
    clearIncoming(config.dataDir);
    const resolver = opts.captureDir ? offlineResolver() : createResolver(config.dns.servers);
    const srs = new Srs(await loadSrsSecret(config.dir));
    if (!opts.captureDir) {
      // The sandbox asks no DNS: its rotations never switch.
      rotator = startRotator({
        directory,
        switches,
        resolver: () => createResolver(config.dns.servers).resolve,
        log,
        intervalMs: config.dkim.rotationCheckMs,
        now: () => new Date(),
      });
      stops.push(() => rotator?.stop());
      void rotator.check(); // until it answers, the old keys sign (their records are published)
    }
    // prom-client loads only when an http listener serves /metrics.
    const metrics = config.listen.http.length
      ? new (await import('./metrics/metrics.ts')).Metrics({
          queue: () => queue.store.stats(),
          certificateExpiry: () => certs.store.current.notAfter.getTime() / 1000,
          renewalFailures: () => certs.renewal().failures,
        })
      : noMetrics;
    // The listeners close, and the delivery workers stop, together: each
    // gives what is in progress the same grace, so a stop takes it once.
    const draining: { close(): Promise<unknown> }[] = [];
    stops.push(async () => {
      const closed = await Promise.allSettled(draining.map((l) => l.close()));
      const failed = closed.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    });
    const budget = new MemoryBudget(config.limits.dataMemory);
    const sign = poolSigner(workers);
    // One store and one set of quotas for every path a key sends by, so a
    // key's rate holds over the APIs and SMTP together.
    const keys = new KeyStore(spool.db);
    const quotas = new Quotas(spool.db);
    // one-click unsubscribe and Feedback-ID on every path our senders use
    const bulk = createBulk(
      { base: httpsBase(config.hostname, config.listen.https), ...config.bulk },
      await loadUnsubscribeSecret(config.dataDir),
      log,
    );
    const unsubscribe = unsubscribeHandler({ store: queue.store, log });
    const sesApi = lazyApi({
      hostname: config.hostname,
      messageSize: config.limits.messageSize,
      directory,
      spool,
      queue: queue.store,
      suppressions: queue.store.suppressions,
      sign,
      quotas,
      keys,
      budget,
      resolve: resolver.resolve,
      log,
      bulk,
    });
    // webhooks: the SNS signing key is made only when an endpoint wants it
    const signer = config.webhooks.some((w) => w.format === 'sns')
      ? await loadSnsSigner(config.dataDir, config.hostname)
      : null;
    const webhooks = new Webhooks({
      db: spool.db,
      hooks: config.webhooks,
      base: `https://${config.hostname}`,
      signer,
      log,
    });
    const api: ApiHandler = (req, res) =>
      unsubscribe(req, res) ||
      sesApi(req, res) ||
      serveSnsCert(signer, req, res) ||
      webhooks.handle(req, res);
    const smtp = await startSmtp({
      config,
      directory,
      spool,
      queue: queue.store,
      log,
      certs: certs.store,
      resolve: resolver.resolve,
      verify: poolVerifier(workers),
      sign,
      budget,
      srs,
      metrics,
      keys,
      quotas,
      bulk,
      reportBudget: new ReportBudget(),
    });
    draining.push(smtp);
    const started = Date.now();
    const complaints = complaintRatesEvery(spool.db, 60_000);
    // warm-up: held recipients are looked at again, under the schedule as it is now
    const warmup = config.warmup.length ? new Warmup(spool.db, config.warmup) : null;
    const released = await spool.releaseWarmupHolds();
    if (released) log.info({ recipients: released }, 'recipients held for warm-up are due again');
    const status = async (): Promise<Status> => {
      const q = await queue.store.overview();
      return {
        version: VERSION,
        pid: process.pid,
        startedAt: new Date(started).toISOString(),
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
        listeners: [
          ...smtp.listeners.map((l) => ({
            kind: l.kind,
            address: formatEndpoint({ host: l.endpoint.host, port: l.port }),
          })),
          ...config.listen.https.map((e) => ({ kind: 'https', address: formatEndpoint(e) })),
          ...config.listen.http.map((e) => ({ kind: 'http', address: formatEndpoint(e) })),
        ],
        queue: {
          messages: q.messages,
          queued: q.queued,
          deferred: q.deferred,
          oldestSeconds: q.oldestSeconds,
        },
        lastHour: q.lastHour,
        lastDay: q.lastDay,
        certificate: {
          names: certs.store.current.names,
          temporary: certs.store.current.temporary === true,
          notAfter: certs.store.current.notAfter.toISOString(),
          daysLeft: Math.floor((certs.store.current.notAfter.getTime() - Date.now()) / 86400_000),
          ...certs.renewal(),
        },
        dkim: Object.fromEntries(
          directory.names().map((d) => [d, directory.keys(d).map((k) => k.selector)]),
        ),
        dkimRotation: Object.fromEntries(
          directory.names().flatMap((d) => {
            const r = directory.rotation(d);
            return r ? [[d, rotationLine(r.plan, r.switchedAt, new Date())]] : [];
          }),
        ),
        keys: keys
          .list()
          .filter((k) => k.revokedAt === null)
          .map((k) => ({
            id: k.id,
            name: k.name,
            rate: k.rate,
            daily: k.daily,
            sentLast24Hours: sentLast24Hours(spool.db, k.id),
          })),
        complaints: complaints(),
        warmup: warmup?.status(Date.now()) ?? [],
        errors: opts.errors?.items ?? [],
      };
    };
    const dashboard = lazyDashboard({
      config,
      resolve: resolver.resolve,
      db: spool.db,
      suppressions: queue.store.suppressions,
      status,
      captured: opts.captureDir,
      directory,
      hosts: allowedHosts([
        config.hostname,
        ...config.listen.http.map((e) => e.host),
        ...(config.dashboard.https ? config.listen.https.map((e) => e.host) : []),
      ]),
      log,
    });
    const onHttps = config.dashboard.https ? dashboard : undefined;
    draining.push(await startWeb(config, directory, certs, log, api, onHttps));
    draining.push(await startHttp(config.listen.http, metrics, log, api, dashboard));
    certs.start();
    stops.push(() => certs.stop());
    const scheduler = new Scheduler({
      store: queue.store,
      limits: queue.limits,
      spool,
      transport: transport(config, spool, resolver, opts),
      directory,
      srs,
      delivery: config.delivery,
      hostname: config.hostname,
      log,
      metrics,
      warmup,
    });
    scheduler.start();
    draining.push({ close: () => scheduler.stop() });
    webhooks.start();
    draining.push({ close: () => webhooks.stop() });
    const control = await startControl(config.dataDir, status).catch((err: Error) => {
      log.warn({ err: err.message }, 'no control socket: posta status will not reach this server');
      return null;
    });
    if (control) stops.push(() => control.close());
    const sendmail = await startLocalSubmission(
      config.dataDir,
      {
        get domains() {
          return directory.names(); // as they are now, after any reload
        },
        hostname: config.hostname,
        messageSize: config.limits.messageSize,
        keys: (domain) => directory.keys(domain),
        enqueue: (envelope, data, id) => queue.store.enqueue(envelope, data, id),
        bulk,
      },
      log,
    ).catch((err: Error) => {
      log.warn(
        { err: err.message },
        'no local submission socket: posta sendmail must queue by itself',
      );
      return null;
    });
    if (sendmail) stops.push(() => sendmail.close());
    saveCompileCache();
    return { listeners: smtp.listeners, spool, stop: stopAll };
  } catch (err) {
    await stopAll();
    if (err instanceof PostaError) throw err;
    throw new PostaError((err as Error).message);
  }
}

function openSpool(config: ResolvedConfig, workers: WorkerPool, log: Logger): Spool {
  try {
    return new Spool(config.dataDir, {
      run: (path) =>
        workers.run({ kind: 'checkpoint', input: { path } }) as Promise<CheckpointResult>,
      onError: (error) =>
        log.error(
          { err: error },
          'the queue could not be checkpointed: its WAL file grows until it can',
        ),
    });
  } catch (err) {
    throw new PostaError(`Cannot open the queue in ${config.dataDir}: ${(err as Error).message}.`);
  }
}

/** The https listener (MTA-STS policies, tls-alpn-01, the dashboard if on) and, for http-01, port 80. */
async function startWeb(
  config: ResolvedConfig,
  directory: Directory,
  certs: CertificateSource,
  log: Logger,
  api: ApiHandler,
  dashboard: DashboardHandler | undefined,
): Promise<{ close(): Promise<void> }> {
  const deps = {
    config,
    domains: () => directory.names(),
    certs: certs.store,
    log,
    api,
    dashboard,
  };
  const https = await startHttps({ ...deps, challenges: certs.challenges });
  if (config.acme?.challenge !== 'http-01') return https;
  const http = await startHttp01(config.acme.httpListen, certs.challenges, log).catch(
    async (err: Error) => {
      await https.close();
      throw err;
    },
  );
  return { close: () => Promise.all([https.close(), http.close()]).then(() => {}) };
}

function transport(
  config: ResolvedConfig,
  spool: Spool,
  resolver: Resolver,
  opts: AppOptions,
): Transport {
  if (opts.captureDir) return new CaptureTransport(opts.captureDir);
  return new MxTransport({
    hostname: config.hostname,
    listen: config.listen.smtp,
    delivery: config.delivery,
    resolver,
    sts: config.delivery.mtaSts ? new StsPolicies(spool.db, resolver.resolve) : null,
    log: opts.log,
  });
}
