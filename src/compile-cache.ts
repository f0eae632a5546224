/**
 * Node's compile cache in the data folder, for the server and its threads.
 * A module is type-stripped and compiled once and read back from the cache
 * at the next start, and a thread whose modules are all cached never loads
 * Node's TypeScript stripper (amaro, swc built to WebAssembly): measured,
 * about 20 MB for the main thread and 15 MB for each worker. The folder is
 * in the data folder, private to posta's user: a cache that others could
 * write would be code they could make posta run.
 *
 * Enabled here, it serves the modules loaded from now on and the worker
 * threads. The systemd unit (contrib/posta.service) sets NODE_COMPILE_CACHE
 * to the same folder, so that the main thread's first modules come from it too.
 */
import { enableCompileCache, flushCompileCache } from 'node:module';
import { join } from 'node:path';

export function useCompileCache(dataDir: string): void {
  const { directory } = enableCompileCache(join(dataDir, 'compile-cache'));
  // worker threads started from now on read it through their environment
  if (directory) process.env.NODE_COMPILE_CACHE = directory;
}

/** Writes what this thread compiled since the last flush (Node writes it at exit otherwise). */
export function saveCompileCache(): void {
  flushCompileCache();
}
