/**
 * A small, fast authoritative DNS server for the end-to-end bench: UDP on
 * ADDRESS:53, a fixed set of records, NOERROR without answers (NODATA) for
 * other types of a known name, NXDOMAIN for unknown names.
 *
 * Why not test/helpers/dns.ts (dnslib)? posta asks three questions per
 * delivery (MX, then A and AAAA of the MX host; answers are cached for a
 * minute), and the Python server answered only ~1,000 of those per second on
 * the bench's 2-core VM before posta cached them: it, not posta, set the
 * delivered rate. A real resolver with a cache
 * answers far faster. BENCH_DNS=dnslib runs the bench on the Python one.
 *
 * It runs in its own process (`node bench/dns.ts ADDRESS ZONE_JSON`) so it
 * does not share the load generator's event loop.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';

/** name → record type → answers: MX as "PREFERENCE HOST", A as a dotted quad. */
export type Records = Record<string, { MX?: string[]; A?: string[] }>;

const TYPES = { A: 1, MX: 15 } as const;

function encodeName(name: string): Buffer {
  const labels = name.split('.').filter(Boolean);
  return Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0]),
  ]);
}

function rdata(type: keyof typeof TYPES, value: string): Buffer {
  if (type === 'A') return Buffer.from(value.split('.').map(Number));
  const [pref = '0', host = ''] = value.split(' ');
  const p = Buffer.alloc(2);
  p.writeUInt16BE(Number(pref));
  return Buffer.concat([p, encodeName(host)]);
}

/** The reply to one query, or null when it is not one we can parse. */
export function answer(query: Buffer, records: Records): Buffer | null {
  if (query.length < 17) return null;
  let o = 12;
  const labels: string[] = [];
  while (o < query.length && query[o] !== 0) {
    const len = query[o]!;
    if (len > 63) return null; // no compression in questions
    labels.push(query.subarray(o + 1, o + 1 + len).toString('ascii'));
    o += len + 1;
  }
  o++;
  if (o + 4 > query.length) return null;
  const qtype = query.readUInt16BE(o);
  const question = query.subarray(12, o + 4);
  const node = records[labels.join('.').toLowerCase()];
  const answers: Buffer[] = [];
  for (const [type, code] of Object.entries(TYPES) as [keyof typeof TYPES, number][]) {
    if (code !== qtype) continue;
    for (const value of node?.[type] ?? []) {
      const data = rdata(type, value);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
      rr.writeUInt16BE(code, 2);
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(300, 6);
      rr.writeUInt16BE(data.length, 10);
      answers.push(rr, data);
    }
  }
  const head = Buffer.alloc(12);
  head.writeUInt16BE(query.readUInt16BE(0), 0); // id
  // QR, AA, the query's RD; NXDOMAIN for an unknown name
  head.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | (node ? 0 : 3), 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(answers.length / 2, 6);
  return Buffer.concat([head, question, ...answers]);
}

/** Start the server in a child process; resolves once it listens. */
export async function startBenchDns(
  address: string,
  records: Records,
): Promise<{ endpoint: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [new URL(import.meta.url).pathname, address, JSON.stringify(records)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench/dns.ts exited with ${code}`)));
    createInterface({ input: child.stdout }).once('line', () => resolve());
  });
  return { endpoint: `${address}:53`, stop: () => child.kill() };
}

if (import.meta.main) {
  const [address = '127.0.0.1', json = '{}'] = process.argv.slice(2);
  const records = JSON.parse(json) as Records;
  const sock = createSocket('udp4');
  sock.on('message', (query, peer) => {
    const reply = answer(query, records);
    if (reply) sock.send(reply, peer.port, peer.address);
  });
  sock.bind(53, address, () => console.log('ready'));
}
