/** A verification worker thread (see pool.ts): verifyInbound with its own resolver. */
import { parentPort, workerData } from 'node:worker_threads';
import type { Endpoint } from '../config/endpoint.ts';
import { createResolver, offlineResolver } from '../dns/resolver.ts';
import { verifyInbound } from './inbound.ts';
import type { VerifyRequest } from './pool.ts';

const { servers } = workerData as { servers: Endpoint[] | null };
const resolver = servers ? createResolver(servers) : offlineResolver();

parentPort?.on('message', (m: { id: number; input: VerifyRequest }) => {
  // structured clone gives Uint8Arrays back; a body in a file stays a path
  const { head, body } = m.input.message;
  const message = {
    head: Buffer.from(head),
    body: body instanceof Uint8Array ? Buffer.from(body) : body,
  };
  const input = { ...m.input, message };
  verifyInbound({ ...input, resolve: resolver.resolve }).then(
    (result) => parentPort?.postMessage({ id: m.id, result }),
    (err: Error) => parentPort?.postMessage({ id: m.id, error: err.message }),
  );
});
