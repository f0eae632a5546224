import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Resolver } from '../dns/resolver.ts';
import { findRoute } from './route.ts';

/** An in-memory DNS: names map to records; "servfail" names fail temporarily. */
function fakeResolver(zone: {
  mx?: Record<string, { exchange: string; priority: number }[]>;
  a?: Record<string, string[]>;
  aaaa?: Record<string, string[]>;
  nxdomain?: string[];
  servfail?: string[];
}): Resolver {
  const fail = (name: string) => {
    if (zone.servfail?.includes(name))
      throw Object.assign(new Error('SERVFAIL'), { code: 'ESERVFAIL' });
    if (zone.nxdomain?.includes(name))
      throw Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' });
  };
  return {
    resolve: () => Promise.reject(new Error('not used')),
    mx(name) {
      fail(name);
      const r = zone.mx?.[name];
      if (!r) return Promise.reject(Object.assign(new Error('NODATA'), { code: 'ENODATA' }));
      return Promise.resolve(r);
    },
    addresses(name, family) {
      fail(name);
      return Promise.resolve((family === 4 ? zone.a : zone.aaaa)?.[name] ?? []);
    },
  };
}

const zone = {
  mx: {
    'multi.test': [
      { exchange: 'b.multi.test', priority: 20 },
      { exchange: 'a.multi.test', priority: 10 },
    ],
    'null.test': [{ exchange: '', priority: 0 }],
    'noaddr.test': [{ exchange: 'gone.noaddr.test', priority: 10 }],
    'flaky.test': [
      { exchange: 'bad.flaky.test', priority: 10 },
      { exchange: 'ok.flaky.test', priority: 20 },
    ],
  },
  a: {
    'a.multi.test': ['192.0.2.1'],
    'b.multi.test': ['192.0.2.2'],
    'implicit.test': ['192.0.2.3'],
    'ok.flaky.test': ['192.0.2.4'],
  },
  aaaa: { 'a.multi.test': ['2001:db8::1'] },
  nxdomain: ['nx.test', 'gone.noaddr.test'],
  servfail: ['broken.test', 'bad.flaky.test'],
};

const cases: [string, string, Awaited<ReturnType<typeof findRoute>> | RegExp][] = [
  [
    'MX in preference order, IPv6 first',
    'multi.test',
    {
      kind: 'hosts',
      implicit: false,
      hosts: [
        { name: 'a.multi.test', addresses: ['2001:db8::1', '192.0.2.1'], priority: 10 },
        { name: 'b.multi.test', addresses: ['192.0.2.2'], priority: 20 },
      ],
    },
  ],
  [
    'no MX: the domain itself (implicit MX)',
    'implicit.test',
    {
      kind: 'hosts',
      implicit: true,
      hosts: [{ name: 'implicit.test', addresses: ['192.0.2.3'], priority: 0 }],
    },
  ],
  ['null MX fails for good', 'null.test', /^permanent 5\.1\.10 /],
  ['NXDOMAIN fails for good', 'nx.test', /^permanent 5\.1\.2 /],
  ['SERVFAIL waits', 'broken.test', /^transient 4\.4\.3 /],
  ['MX host without address waits', 'noaddr.test', /^transient 4\.4\.4 /],
  [
    'a failing MX host is skipped for the next',
    'flaky.test',
    {
      kind: 'hosts',
      implicit: false,
      hosts: [{ name: 'ok.flaky.test', addresses: ['192.0.2.4'], priority: 20 }],
    },
  ],
];

for (const [name, domain, want] of cases) {
  test(`route: ${name}`, async () => {
    const got = await findRoute(domain, fakeResolver(zone), 'prefer-ipv6', () => 0.5);
    if (want instanceof RegExp) {
      assert.equal(got.kind, 'fail');
      if (got.kind === 'fail') {
        const o = got.outcome;
        assert.match(`${o.kind} ${o.reply.enhanced} ${o.reply.text}`, want);
      }
    } else {
      assert.deepEqual(got, want);
    }
  });
}

test('route: ip_family picks and orders address families', async () => {
  const r = fakeResolver(zone);
  const addrs = async (family: Parameters<typeof findRoute>[2]) => {
    const got = await findRoute('multi.test', r, family);
    return got.kind === 'hosts' ? got.hosts[0]?.addresses : [];
  };
  assert.deepEqual(await addrs('prefer-ipv4'), ['192.0.2.1', '2001:db8::1']);
  assert.deepEqual(await addrs('ipv4-only'), ['192.0.2.1']);
  assert.deepEqual(await addrs('ipv6-only'), ['2001:db8::1']);
});
