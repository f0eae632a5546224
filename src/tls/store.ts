/**
 * The certificate every listener presents, in one place, swapped without a
 * restart: by ACME after a renewal, or when the [tls] files change on disk
 * (another tool renewed them). Listeners subscribe and use the new
 * certificate for new connections; connections already open keep theirs.
 *
 * A changed file that does not load (half written, key and certificate not
 * yet both replaced, expired) is logged and the current certificate stays.
 */
import { fileStamp } from '../fsutil/stamp.ts';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from '../log/log.ts';
import { loadCertificate, type Certificate } from './certs.ts';

export class CertStore {
  private cert: Certificate;
  private ctx: SecureContext;
  private readonly listeners: ((c: Certificate) => void)[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(initial: Certificate) {
    this.cert = initial;
    this.ctx = createSecureContext({ key: initial.key, cert: initial.cert });
  }

  get current(): Certificate {
    return this.cert;
  }

  get context(): SecureContext {
    return this.ctx;
  }

  onChange(fn: (c: Certificate) => void): void {
    this.listeners.push(fn);
  }

  set(cert: Certificate): void {
    this.ctx = createSecureContext({ key: cert.key, cert: cert.cert });
    this.cert = cert;
    for (const fn of this.listeners) fn(cert);
  }

  /**
   * Check the files every `ms` and load them when either changed since
   * `loaded`: their stamp taken before the current certificate was read, so
   * a change made while the server was starting is not missed.
   */
  watchFiles(certFile: string, keyFile: string, loaded: string, ms: number, log: Logger): void {
    let seen = loaded;
    let failed = '';
    this.timer = setInterval(() => {
      void (async () => {
        let now: string;
        try {
          now = await filesStamp(certFile, keyFile);
        } catch {
          return; // mid-replacement: look again next time
        }
        if (now === seen || now === failed) return;
        try {
          const cert = await loadCertificate(certFile, keyFile);
          seen = now;
          this.set(cert);
          log.info(
            { names: cert.names, notAfter: cert.notAfter.toISOString() },
            'certificate reloaded',
          );
        } catch (err) {
          failed = now;
          log.warn(
            { err: (err as Error).message },
            'changed certificate files do not load; keeping the current certificate',
          );
        }
      })();
    }, ms);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

/** The stamp of the pair (fsutil/stamp.ts): changes when either file does. */
export async function filesStamp(certFile: string, keyFile: string): Promise<string> {
  return (await Promise.all([fileStamp(certFile), fileStamp(keyFile)])).join('|');
}
