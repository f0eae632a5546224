/**
 * Conformance: the RFC 7208 SPF test suite (openspf.org release 2014.04, as
 * Debian's python3-spf ships it) run through posta's own SPF path:
 * verifyInbound (src/verify/inbound.ts), which hands the resolver it is
 * given to mailauth. Each scenario's zone data is served by an in-memory
 * resolver that answers as node:dns does (ENOTFOUND for an absent name,
 * ENODATA for a name without that type, ETIMEOUT for "TIMEOUT"), with the
 * suite's driver rules (from pyspf's testspf.py): a name with SPF records and
 * no TXT gets them as TXT too (except where "NONE" says there is none), a
 * CNAME is followed one level, and a label over 63 octets is a DNS error.
 *
 * The result must be one the suite allows. Explanations (exp=) are not
 * compared: posta does not use them. SKIP lists the cases posta's SPF path
 * answers differently, each with the reason; a case in it that starts to
 * pass fails this test, so the list stays true.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { verifyInbound } from '../../src/verify/inbound.ts';
import { split } from '../../src/message/held.ts';

const SUITE = '/usr/share/doc/python3-spf/rfc7208-tests.yml.gz';

type Rdata = Record<string, unknown> | string;
interface Case {
  helo: string;
  host: string;
  mailfrom: string;
  result: string | string[];
  spec?: string | string[];
  description?: string;
}
interface Scenario {
  description: string;
  tests: Record<string, Case>;
  zonedata?: Record<string, Rdata[]>;
}

/** The suite's YAML documents as JSON, read by Debian's python3 (python3-yaml). */
function loadSuite(): Scenario[] {
  const json = execFileSync(
    '/usr/bin/python3',
    [
      '-c',
      'import gzip, json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(gzip.open(sys.argv[1]))), default=str))',
      SUITE,
    ],
    { encoding: 'utf8', maxBuffer: 16 << 20 },
  );
  return (JSON.parse(json) as (Scenario | null)[]).filter((s): s is Scenario => !!s);
}

/**
 * Cases posta's SPF path (mailauth 7.1) answers otherwise than the suite, and
 * why. In none of them does a result the suite calls non-pass become pass;
 * each is a mailauth behaviour, reported upstream rather than patched here.
 */
const SKIP: Record<string, string> = {
  'bare-ip6':
    'mailauth reads "ip6" without an address as a mechanism that does not match, so the record ends in -all (fail), not a syntax error (permerror).',
  'exp-only-macro-char':
    'mailauth does not check the exp= text before it is needed; posta never asks for explanations, so the mechanisms decide (fail).',
  'exp-syntax-error':
    'mailauth ignores a malformed exp= modifier instead of refusing the record (neutral, not permerror); posta does not use explanations.',
  'exp-twice':
    'mailauth accepts two exp= modifiers (RFC 7208 §6 says permerror); the mechanisms decide (fail); posta does not use explanations.',
  'hello-domain-literal':
    'mailauth checks a %{h} expansion that is a domain literal after expanding it and gives permerror; the suite wants the exists: to find nothing (fail).',
  'invalid-hello-macro':
    'as hello-domain-literal: an invalid HELO in %{h} is permerror in mailauth, fail in the suite.',
  'require-valid-helo':
    'as hello-domain-literal: the policy expands %{h} of a HELO without a dot; mailauth gives permerror where the suite wants fail.',
};

const dnsError = (code: string, name: string) =>
  Object.assign(new Error(`${code} ${name}`), { code, hostname: name });

/** A node:dns-shaped resolver over one scenario's zone data. */
function zoneResolver(zonedata: Record<string, Rdata[]> = {}) {
  const zone = new Map(Object.entries(zonedata).map(([k, v]) => [k.toLowerCase(), v]));
  const lookup = (name: string, type: string, level: number): unknown[] => {
    const labels = name.split('.').filter((l) => l !== '');
    // node:dns refuses such a name before asking (RFC 1035 §2.3.4), as posta's resolver does.
    if (labels.some((l) => l.length > 63) || labels.join('.').length > 253) {
      throw dnsError('EBADNAME', name);
    }
    const key = labels.join('.').toLowerCase();
    const rrs = zone.get(key);
    if (!rrs) {
      if (key.startsWith('error.')) throw dnsError('ETIMEOUT', name);
      throw dnsError('ENOTFOUND', name);
    }
    const hasTxt = rrs.some((r) => typeof r === 'object' && 'TXT' in r);
    const out: unknown[] = [];
    for (const rr of rrs) {
      if (rr === 'TIMEOUT') {
        if (out.length === 0) throw dnsError('ETIMEOUT', name);
        return out;
      }
      if (typeof rr !== 'object') continue;
      for (const [t, v] of Object.entries(rr)) {
        const as = t === 'SPF' && !hasTxt && type === 'TXT' ? 'TXT' : t;
        if (v === 'TIMEOUT' && as === type) throw dnsError('ETIMEOUT', name);
        if (v === 'NONE' || v === 'TIMEOUT') continue;
        if (as === 'CNAME' && type !== 'CNAME' && level === 0) {
          out.push(...lookup(String(v), type, 1));
          continue;
        }
        if (as !== type) continue;
        if (type === 'TXT' || type === 'SPF')
          out.push(Array.isArray(v) ? v.map(String) : [String(v)]);
        else if (type === 'MX') {
          const [priority, exchange] = v as [number, string];
          out.push({ priority, exchange });
        } else out.push(String(v));
      }
    }
    if (out.length === 0) throw dnsError('ENODATA', name);
    return out;
  };
  return (name: string, type: string): Promise<unknown> =>
    new Promise((resolve) => resolve(lookup(name, type, 0)));
}

async function spfResult(c: Case, zonedata: Scenario['zonedata']): Promise<string> {
  const r = await verifyInbound({
    message: split(Buffer.from('From: someone@from.invalid\r\nSubject: spf\r\n\r\nbody\r\n')),
    ip: c.host,
    helo: c.helo,
    sender: c.mailfrom,
    hostname: 'mx.posta.test',
    resolve: zoneResolver(zonedata),
    dmarcReject: false,
    localDomains: [],
  });
  return r.summary.spf;
}

const suite = loadSuite();

test('the RFC 7208 suite is there, whole', () => {
  const cases = suite.reduce((n, s) => n + Object.keys(s.tests).length, 0);
  assert.ok(suite.length >= 15, `${suite.length} scenarios`);
  assert.ok(cases >= 150, `${cases} cases`);
  for (const id of Object.keys(SKIP)) {
    assert.ok(
      suite.some((s) => id in s.tests),
      `skip list names ${id}, which the suite does not have`,
    );
  }
});

for (const scenario of suite) {
  test(`RFC 7208 suite: ${scenario.description}`, async (t) => {
    for (const [id, c] of Object.entries(scenario.tests)) {
      await t.test(id, async () => {
        const allowed = [c.result].flat().map(String);
        const got = await spfResult(c, scenario.zonedata);
        const skip = SKIP[id];
        if (skip) {
          assert.ok(!allowed.includes(got), `${id} now passes (${got}): take it off the skip list`);
          return;
        }
        assert.ok(
          allowed.includes(got),
          `${id} (RFC 7208 ${[c.spec].flat().join(', ')}): got ${got}, the suite allows ${allowed.join(' or ')}`,
        );
      });
    }
  });
}
