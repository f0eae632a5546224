/**
 * The composition root: build the running server's services from the
 * resolved config and start them in order; stop them in reverse. No logic.
 */
import { PostaError } from './errors.ts';
import type { ResolvedConfig } from './config/load.ts';
import { Directory } from './domains/directory.ts';
import { Spool } from './queue/spool.ts';
import type { Logger } from './log/log.ts';
import { certificateSource, type CertificateSource } from './tls/source.ts';
import { startHttps } from './web/https.ts';
import { startHttp01 } from './acme/http01.ts';
import { startSmtp, type Listener } from './smtp/server.ts';
import { createResolver, offlineResolver, type Resolver } from './dns/resolver.ts';
import { Srs, loadSrsSecret } from './srs/srs.ts';
import { VerifierPool } from './verify/pool.ts';
import { StsPolicies } from './delivery/sts.ts';
import { MxTransport } from './delivery/mx.ts';
import { CaptureTransport } from './delivery/capture.ts';
import { Scheduler } from './delivery/scheduler.ts';
import type { Transport } from './delivery/transport.ts';

export interface App {
  listeners: Listener[];
  spool: Spool;
  stop(): Promise<void>;
}

export async function startApp(
  config: ResolvedConfig,
  /**
   * captureDir: the sandbox; deliveries are written there instead of sent,
   * and DNS is never asked (inbound checks come out as temperror).
   */
  opts: { log: Logger; captureDir?: string },
): Promise<App> {
  if (config.domains.length === 0) {
    throw new PostaError(
      `${config.dir} has no domains; add one with \`posta init DOMAIN --dir ${config.dir}\`.`,
    );
  }
  const certs = await certificateSource(config, opts.log);
  const certificate = certs.store.current;
  if (config.tls && !certificate.names.some((n) => matches(n, config.hostname))) {
    opts.log.warn(
      { names: certificate.names, hostname: config.hostname },
      'the certificate does not cover hostname; clients that verify it will refuse TLS',
    );
  }
  const directory = await Directory.load(config.dir);
  directory.watch(2000, (err) =>
    opts.log.error({ err: err.message }, 'config folder reload failed; keeping the previous state'),
  );
  let spool: Spool;
  try {
    spool = new Spool(config.dataDir);
  } catch (err) {
    throw new PostaError(`Cannot open the queue in ${config.dataDir}: ${(err as Error).message}.`);
  }
  const resolver = opts.captureDir ? offlineResolver() : createResolver(config.dns.servers);
  const srs = new Srs(await loadSrsSecret(config.dir));
  const verifiers = new VerifierPool({ servers: opts.captureDir ? null : config.dns.servers });
  const smtp = await startSmtp({
    config,
    directory,
    spool,
    log: opts.log,
    certs: certs.store,
    resolve: resolver.resolve,
    verify: verifiers.verify,
    srs,
  }).catch(async (err: Error) => {
    await verifiers.close();
    spool.close();
    throw new PostaError(err.message);
  });
  const web = await startWeb(config, directory, certs, opts.log).catch(async (err: Error) => {
    await smtp.close();
    await verifiers.close();
    spool.close();
    throw new PostaError(err.message);
  });
  certs.start();
  const scheduler = new Scheduler({
    spool,
    transport: transport(config, spool, resolver, opts),
    directory,
    srs,
    delivery: config.delivery,
    hostname: config.hostname,
    log: opts.log,
  });
  scheduler.start();
  return {
    listeners: smtp.listeners,
    spool,
    async stop() {
      certs.stop();
      await web.close();
      await smtp.close();
      await scheduler.stop();
      await verifiers.close();
      directory.stop();
      spool.close();
    },
  };
}

/** The https listener (MTA-STS policies, tls-alpn-01) and, for http-01, port 80. */
async function startWeb(
  config: ResolvedConfig,
  directory: Directory,
  certs: CertificateSource,
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  const deps = { config, domains: () => directory.names(), certs: certs.store, log };
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
  opts: { log: Logger; captureDir?: string },
): Transport {
  if (opts.captureDir) return new CaptureTransport(opts.captureDir);
  return new MxTransport({
    hostname: config.hostname,
    delivery: config.delivery,
    resolver,
    sts: config.delivery.mtaSts ? new StsPolicies(spool.db, resolver.resolve) : null,
    log: opts.log,
  });
}

function matches(pattern: string, name: string): boolean {
  if (pattern.startsWith('*.'))
    return name.endsWith(pattern.slice(1)) && name.split('.').length === pattern.split('.').length;
  return pattern.toLowerCase() === name;
}
