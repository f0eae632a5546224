/**
 * Certificates by ACME (RFC 8555), with acme-client: get one for [acme] names,
 * keep it in the data folder, renew it at two thirds of its lifetime, and hand
 * each new one to the CertStore so every listener uses it at once.
 *
 * Files, certbot-like, private ones mode 0600, under DATA/acme/:
 *   account.key                  the ACME account key
 *   live/NAME/fullchain.pem      the certificate chain (NAME: the first name)
 *   live/NAME/privkey.pem        its key
 *   state.json                   names, issuer, not-after, next renewal, last error
 *   renew-request                written by `posta cert renew`; renews now
 *
 * A failed order keeps the current certificate, is logged, recorded in
 * state.json, shown by `posta status` and counted in /metrics
 * (posta_certificate_renewal_failures), and is retried with back-off (5 minutes, doubling, at most a
 * day). Every request to the CA has a time limit (acme/http.ts), and stop()
 * aborts the order in progress, hook included. Challenges: http-01 (port 80), tls-alpn-01 (the https listener), or
 * dns-01 through [acme] dns_hook, which is what wildcard names need.
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { promisify } from 'node:util';
import * as acme from 'acme-client';
import type { AcmeConfig } from '../config/load.ts';
import type { Logger } from '../log/log.ts';
import { writeFileAtomic } from '../fsutil/atomic.ts';
import { loadCertificate, type Certificate } from '../tls/certs.ts';
import type { CertStore } from '../tls/store.ts';
import type { Challenges } from './challenges.ts';
import { configureAcmeHttp, withSignal } from './http.ts';

const run = promisify(execFile);

export interface Renewal {
  failures: number;
  lastError?: string | undefined;
}

export interface AcmeState {
  names: string[];
  issuer?: string;
  notBefore?: string;
  notAfter?: string;
  nextRenewal?: string;
  renewedAt?: string;
  lastAttempt?: string;
  lastError?: string;
}

const FIRST_RETRY_MS = 5 * 60_000;
const MAX_RETRY_MS = 86400_000;
const POLL_MS = 2000;

export function acmePaths(dataDir: string, names: readonly string[]) {
  const dir = join(dataDir, 'acme');
  const live = join(dir, 'live', (names[0] ?? 'cert').replace(/^\*\./, '_wildcard.'));
  return {
    dir,
    account: join(dir, 'account.key'),
    cert: join(live, 'fullchain.pem'),
    key: join(live, 'privkey.pem'),
    state: join(dir, 'state.json'),
    request: join(dir, 'renew-request'),
  };
}

export async function readAcmeState(
  dataDir: string,
  names: readonly string[],
): Promise<AcmeState | null> {
  try {
    return JSON.parse(await readFile(acmePaths(dataDir, names).state, 'utf8')) as AcmeState;
  } catch {
    return null;
  }
}

/** The certificate on disk, when it is there, loads, and covers every name. */
export async function existingCertificate(
  dataDir: string,
  names: readonly string[],
): Promise<Certificate | null> {
  const p = acmePaths(dataDir, names);
  try {
    const cert = await loadCertificate(p.cert, p.key);
    return names.every((n) => cert.names.includes(n)) ? cert : null;
  } catch {
    return null;
  }
}

export class AcmeManager {
  private readonly cfg: AcmeConfig;
  private readonly paths: ReturnType<typeof acmePaths>;
  private readonly store: CertStore;
  private readonly challenges: Challenges;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | null = null;
  private poller: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private failures = 0;
  private hookQueue: Promise<void> = Promise.resolve();
  private state: AcmeState;
  private readonly stopping = new AbortController();

  constructor(o: {
    config: AcmeConfig;
    dataDir: string;
    store: CertStore;
    challenges: Challenges;
    log: Logger;
    /** True when the store holds a certificate from an earlier run. */
    haveCertificate: boolean;
  }) {
    configureAcmeHttp(); // acme-client has one axios for all: set up on first use, not at import
    this.cfg = o.config;
    this.paths = acmePaths(o.dataDir, o.config.names);
    this.store = o.store;
    this.challenges = o.challenges;
    this.log = o.log;
    this.state = { names: [...o.config.names] };
    if (o.haveCertificate) this.noteCertificate(o.store.current);
  }

  start(): void {
    const due = this.state.nextRenewal ? Date.parse(this.state.nextRenewal) : Date.now();
    this.schedule(due - Date.now());
    this.poller = setInterval(() => void this.checkRequest(), POLL_MS);
    this.poller.unref();
  }

  /** Stop renewing; an order in progress is abandoned, not recorded as failed. */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.poller) clearInterval(this.poller);
    this.stopping.abort();
  }

  /** Order a certificate now (one at a time). */
  renew(): Promise<void> {
    this.running ??= this.order().finally(() => (this.running = null));
    return this.running;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    // setTimeout holds at most ~24.8 days; look again daily.
    const wait = Math.max(0, Math.min(ms, MAX_RETRY_MS));
    this.timer = setTimeout(() => {
      const due = this.state.nextRenewal ? Date.parse(this.state.nextRenewal) : 0;
      if (due > Date.now() + 1000) this.schedule(due - Date.now());
      else void this.renew();
    }, wait);
    this.timer.unref();
  }

  private async checkRequest(): Promise<void> {
    try {
      await unlink(this.paths.request);
    } catch {
      return; // no request
    }
    this.log.info({ names: this.cfg.names }, 'certificate renewal requested');
    await this.renew();
  }

  private async order(): Promise<void> {
    const signal = this.stopping.signal;
    if (signal.aborted) return;
    this.state.lastAttempt = new Date().toISOString();
    // acme-client waits between its polls with timers of its own: on stop,
    // the order is left to them and ends here at once.
    let onAbort = () => {};
    const stopped = new Promise<never>((_, reject) => {
      onAbort = () => reject(new Error('posta is stopping'));
      signal.addEventListener('abort', onAbort, { once: true });
    });
    stopped.catch(() => {});
    try {
      const client = new acme.Client({
        directoryUrl: this.cfg.directory,
        accountKey: await this.accountKey(),
      });
      const [key, csr] = await acme.crypto.createCsr({
        commonName: this.cfg.names[0],
        altNames: [...this.cfg.names],
      });
      const obtain = () =>
        client.auto({
          csr,
          email: this.cfg.email,
          termsOfServiceAgreed: true,
          challengePriority: [this.cfg.challenge],
          // The CA checks; a pre-check from here would ask the public DNS.
          skipChallengeVerification: true,
          challengeCreateFn: (authz, challenge, keyAuth) => this.publish(authz, challenge, keyAuth),
          challengeRemoveFn: (authz, challenge, keyAuth) =>
            this.withdraw(authz, challenge, keyAuth),
        });
      const chain = await Promise.race([withSignal(signal, obtain), stopped]);
      await mkdir(join(this.paths.cert, '..'), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.paths.key, key, 0o600);
      await writeFileAtomic(this.paths.cert, chain, 0o600);
      const cert = await loadCertificate(this.paths.cert, this.paths.key);
      this.store.set(cert);
      this.failures = 0;
      this.state.lastError = undefined;
      this.state.renewedAt = new Date().toISOString();
      this.noteCertificate(cert);
      this.log.info(
        { names: cert.names, issuer: this.state.issuer, notAfter: this.state.notAfter },
        'certificate obtained',
      );
    } catch (err) {
      if (signal.aborted) return;
      this.failures++;
      const wait = Math.min(FIRST_RETRY_MS * 2 ** (this.failures - 1), MAX_RETRY_MS);
      this.state.lastError = (err as Error).message;
      this.state.nextRenewal = new Date(Date.now() + wait).toISOString();
      this.log.error(
        { err: (err as Error).message, retryIn: `${Math.round(wait / 1000)} s` },
        'certificate order failed; keeping the current certificate',
      );
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    await this.saveState().catch((err: Error) =>
      this.log.error(
        { err: err.message },
        'cannot write the ACME state; posta cert status will be stale',
      ),
    );
    this.schedule(Date.parse(this.state.nextRenewal ?? '') - Date.now());
  }

  /** Orders failed in a row since the last one that succeeded, and the last one's error. */
  renewal(): Renewal {
    return { failures: this.failures, lastError: this.state.lastError };
  }

  /** Renew at two thirds of the lifetime, less up to 1% of it at random. */
  private noteCertificate(cert: Certificate): void {
    const info = acme.crypto.readCertificateInfo(cert.cert);
    const from = info.notBefore.getTime();
    const to = info.notAfter.getTime();
    const at = from + ((to - from) * 2) / 3 - Math.random() * (to - from) * 0.01;
    this.state.issuer = info.issuer.commonName;
    this.state.notBefore = info.notBefore.toISOString();
    this.state.notAfter = info.notAfter.toISOString();
    this.state.nextRenewal = new Date(at).toISOString();
  }

  private async saveState(): Promise<void> {
    await mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.paths.state, JSON.stringify(this.state, null, 2) + '\n', 0o600);
  }

  private async accountKey(): Promise<Buffer> {
    try {
      return await readFile(this.paths.account);
    } catch {
      const key = await acme.crypto.createPrivateEcdsaKey();
      await mkdir(this.paths.dir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.paths.account, key, 0o600);
      return key;
    }
  }

  private async publish(
    authz: acme.Authorization,
    challenge: { type: string; token: string },
    keyAuth: string,
  ): Promise<void> {
    const name = authz.identifier.value;
    if (challenge.type === 'http-01') {
      this.challenges.http.set(challenge.token, keyAuth);
    } else if (challenge.type === 'tls-alpn-01') {
      const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuth);
      this.challenges.alpn.set(name, createSecureContext({ key, cert }));
    } else if (challenge.type === 'dns-01') {
      await this.hook('add', `_acme-challenge.${name}`, keyAuth);
    }
  }

  private async withdraw(
    authz: acme.Authorization,
    challenge: { type: string; token: string },
    keyAuth: string,
  ): Promise<void> {
    const name = authz.identifier.value;
    if (challenge.type === 'http-01') this.challenges.http.delete(challenge.token);
    else if (challenge.type === 'tls-alpn-01') this.challenges.alpn.delete(name);
    else if (challenge.type === 'dns-01') {
      await this.hook('del', `_acme-challenge.${name}`, keyAuth).catch((err: Error) =>
        this.log.warn({ err: err.message, name }, 'dns hook could not remove the challenge record'),
      );
    }
  }

  /**
   * Run the dns hook, one call at a time: the two TXT records of a wildcard
   * and its base name have the same NAME, and few hook scripts are written
   * for concurrent edits of one zone.
   */
  private hook(verb: 'add' | 'del', name: string, value: string): Promise<void> {
    const next = this.hookQueue.then(() => this.runHook(verb, name, value));
    this.hookQueue = next.catch(() => {});
    return next;
  }

  private async runHook(verb: 'add' | 'del', name: string, value: string): Promise<void> {
    if (!this.cfg.dnsHook) {
      throw new Error(
        '[acme] challenge = "dns-01" needs dns_hook, a program that publishes TXT records',
      );
    }
    try {
      const hook = run(this.cfg.dnsHook, [verb, name, value], {
        timeout: 120_000,
        signal: this.stopping.signal,
      });
      // Nothing comes on stdin: a hook that reads it gets EOF, not a 2-minute wait.
      hook.child.stdin?.end();
      await hook;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(
        `${this.cfg.dnsHook} ${verb} ${name} failed: ${(e.stderr ?? '').trim() || e.message}`,
      );
    }
  }
}
