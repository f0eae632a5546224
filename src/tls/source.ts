/**
 * Where the server's certificate comes from: [tls] files (watched, reloaded
 * when another tool renews them) or [acme] (posta gets and renews it). Either
 * way the listeners read it from one CertStore.
 */
import { PostaError } from '../errors.ts';
import type { ResolvedConfig } from '../config/load.ts';
import type { Logger } from '../log/log.ts';
import type { Renewal } from '../acme/manager.ts';
import { Challenges } from '../acme/challenges.ts';
import { loadCertificate } from './certs.ts';
import { CertStore, filesStamp } from './store.ts';

const FILE_CHECK_MS = 2000;

export interface CertificateSource {
  store: CertStore;
  challenges: Challenges;
  /** Start renewals (once the challenge listeners are up). */
  start(): void;
  /** How ACME renewals go; always fine for [tls] files, which another tool renews. */
  renewal(): Renewal;
  stop(): void;
}

export async function certificateSource(
  config: ResolvedConfig,
  log: Logger,
): Promise<CertificateSource> {
  const challenges = new Challenges();
  if (config.tls && config.acme) {
    throw new PostaError(
      `${config.file} sets both [tls] and [acme]; keep [acme] to let posta manage the certificate, or [tls] to use files.`,
    );
  }
  if (config.tls) {
    const { cert, key } = config.tls;
    // Stamp first: a file replaced while it is being read is loaded again.
    const loaded = await filesStamp(cert, key).catch(() => '');
    const store = new CertStore(await loadCertificate(cert, key));
    return {
      store,
      challenges,
      start: () => store.watchFiles(cert, key, loaded, FILE_CHECK_MS, log),
      renewal: () => ({ failures: 0 }),
      stop: () => store.stop(),
    };
  }
  if (config.acme) {
    // acme-client and the certificate generator load only for [acme].
    const { AcmeManager, existingCertificate } = await import('../acme/manager.ts');
    const { selfSignedCertificate } = await import('./selfsigned.ts');
    const existing = await existingCertificate(config.dataDir, config.acme.names);
    if (!existing) {
      log.warn(
        { names: config.acme.names },
        'no ACME certificate yet: serving a temporary self-signed one until the CA issues it',
      );
    }
    const store = new CertStore(
      existing ?? { ...(await selfSignedCertificate(config.acme.names)), temporary: true },
    );
    const manager = new AcmeManager({
      config: config.acme,
      dataDir: config.dataDir,
      store,
      challenges,
      log,
      haveCertificate: existing !== null,
    });
    return {
      store,
      challenges,
      start: () => manager.start(),
      renewal: () => manager.renewal(),
      stop: () => manager.stop(),
    };
  }
  throw new PostaError(
    `posta serve needs a certificate: add [acme] with your email to ${config.file} to get one automatically, or set [tls] cert and key to your fullchain.pem and privkey.pem.`,
  );
}
