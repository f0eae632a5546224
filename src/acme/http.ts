/**
 * The HTTP requests acme-client sends to the CA, through the axios instance
 * it exports for this (acme.axios), set up once for posta:
 *
 * - acme-client's own interceptors are removed. They retry a request that got
 *   no answer five times, over 75 s of waits that nothing can cut short, and
 *   then fail with a TypeError ("Cannot read properties of undefined (reading
 *   'config')") in place of the cause. A failed order is retried by the
 *   manager, with back-off, instead.
 * - Every request has a time limit, and is aborted when the signal of the
 *   order it belongs to (withSignal) fires: posta is stopping.
 * - A request that fails says which URL failed and why: DNS, refused, timeout,
 *   TLS, or an HTTP status that is not an ACME problem document (RFC 8555 §6.7).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import * as acme from 'acme-client';

export const REQUEST_TIMEOUT_MS = 30_000;

const orderSignal = new AsyncLocalStorage<AbortSignal>();

/** Run `fn` with every CA request made within it aborted once `signal` fires. */
export function withSignal<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
  return orderSignal.run(signal, fn);
}

interface RequestError {
  code?: string;
  message?: string;
  config?: { url?: string };
  cause?: { code?: string };
  errors?: { code?: string }[];
}

let configured = false;

export function configureAcmeHttp(): void {
  if (configured) return;
  configured = true;
  const http = acme.axios;
  http.interceptors.request.clear();
  http.interceptors.response.clear();
  http.interceptors.request.use((config) => {
    const stop = orderSignal.getStore();
    const limit = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    config.signal = stop ? AbortSignal.any([stop, limit]) : limit;
    return config;
  });
  http.interceptors.response.use(
    (res) => {
      const type = String(res.headers['content-type'] ?? '');
      if (res.status >= 400 && !type.includes('problem+json')) {
        const url = res.config.url ?? '?';
        throw new Error(
          `The ACME CA at ${url} answered HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}.`,
        );
      }
      return res;
    },
    (err: RequestError) => Promise.reject(describe(err, orderSignal.getStore())),
  );
}

function describe(err: RequestError, stop: AbortSignal | undefined): Error {
  const url = err.config?.url ?? '?';
  const code = err.code ?? err.cause?.code ?? err.errors?.[0]?.code ?? '';
  let host = url;
  try {
    host = new URL(url).hostname;
  } catch {
    // not a URL: say it as it is
  }
  const why =
    code === 'ERR_CANCELED'
      ? stop?.aborted
        ? 'posta is stopping'
        : `no answer within ${REQUEST_TIMEOUT_MS / 1000} s (timeout)`
      : code === 'ENOTFOUND'
        ? `the name ${host} does not resolve (DNS: ENOTFOUND)`
        : code === 'EAI_AGAIN'
          ? `the DNS lookup of ${host} failed (EAI_AGAIN)`
          : code === 'ECONNREFUSED'
            ? 'the connection was refused (ECONNREFUSED)'
            : code === 'ECONNRESET'
              ? 'the connection was reset (ECONNRESET)'
              : ['ETIMEDOUT', 'ENETUNREACH', 'EHOSTUNREACH'].includes(code)
                ? `no connection (${code})`
                : /CERT|SSL|TLS|EPROTO|UNABLE_TO/.test(code)
                  ? `TLS failed: ${err.message ?? code}`
                  : (err.message ?? (code || 'unknown error'));
  return new Error(`The ACME CA at ${url} cannot be reached: ${why}.`);
}
