/** A verification worker thread (see pool.ts): verifyInbound with its own resolver. */
import { parentPort, workerData } from 'node:worker_threads';
import type { Endpoint } from '../config/endpoint.ts';
import { createResolver, offlineResolver } from '../dns/resolver.ts';
import { verifyInbound } from './inbound.ts';
import type { VerifyRequest } from './pool.ts';

const { servers } = workerData as { servers: Endpoint[] | null };
const resolver = servers ? createResolver(servers) : offlineResolver();

parentPort?.on('message', (m: { id: number; input: VerifyRequest }) => {
  const input = { ...m.input, message: Buffer.from(m.input.message) };
  verifyInbound({ ...input, resolve: resolver.resolve }).then(
    (result) => parentPort?.postMessage({ id: m.id, result }),
    (err: Error) => parentPort?.postMessage({ id: m.id, error: err.message }),
  );
});
