/**
 * Aliases under arbitrary input: parsing a file never throws anything but
 * PostaError (one sentence naming the file and line), and resolution of any
 * address over any alias graph (loops, meshes, catch-alls) terminates with
 * final addresses only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AliasFile, type Alias } from '../../src/aliases/aliases.ts';
import { MAX_DEPTH, resolveAddress } from '../../src/aliases/resolve.ts';
import { PostaError } from '../../src/errors.ts';
import { budget } from './budget.ts';

const FILE = 'domains/example.test/aliases';

/** Lines that look like an aliases file, mixed with arbitrary text. */
const lineArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc
    .tuple(
      fc.oneof(fc.constantFrom('*', 'sales', 'a.b', 'x+y', ''), fc.string({ maxLength: 12 })),
      fc.array(
        fc.oneof(
          fc.emailAddress(),
          fc.constantFrom('bob', '| cat', '*@gmail.com', 'sales', '@', 'a@b', ' '),
          fc.string({ maxLength: 20 }),
        ),
        { maxLength: 4 },
      ),
    )
    .map(([l, ts]) => `${l}: ${ts.join(', ')}`),
  fc.constantFrom('# comment', '', '\r', 'no colon here'),
);

test('AliasFile.parse: a file parses, or fails with one PostaError sentence', () => {
  fc.assert(
    fc.property(fc.array(lineArb, { maxLength: 12 }), (lines) => {
      const text = lines.join('\n');
      let file: AliasFile;
      try {
        file = AliasFile.parse(FILE, 'example.test', text);
      } catch (err) {
        assert.ok(err instanceof PostaError, `not a PostaError: ${String(err)}`);
        assert.match(err.message, new RegExp(`^${FILE} line \\d+: `));
        assert.doesNotMatch(err.message, /\n|undefined|\[object /);
        return;
      }
      // What parsed prints back to a file that parses to the same aliases.
      const again = AliasFile.parse(FILE, 'example.test', file.toString());
      assert.deepEqual(again.aliases(), file.aliases());
    }),
    // Found by this property: a bare "*" target was taken as the mailbox
    // *@DOMAIN, which posta then wrote back as a line it refuses to read.
    budget<[string[]]>(300, [[['$: *']], [['sales: bob, *']]]),
  );
});

const local = fc.constantFrom('a', 'b', 'c', 'd', 'e', '*', 'a+x');
const domain = fc.constantFrom('one.test', 'two.test', 'remote.example');
const address = fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'z', 'a+x'), domain);

/** An alias graph over two local domains (remote.example is not local). */
const graphArb = fc.dictionary(
  fc.constantFrom('one.test', 'two.test'),
  fc.uniqueArray(
    fc.record({
      local,
      targets: fc.array(
        address.map(([l, d]) => `${l}@${d}`),
        { minLength: 1, maxLength: 5 },
      ),
    }),
    { selector: (a) => a.local, maxLength: 7 },
  ),
);

test('resolveAddress: terminates on any alias graph and returns final addresses only', () => {
  fc.assert(
    fc.property(graphArb, address, (graph, [l, d]) => {
      let lookups = 0;
      const lookup = (dom: string): readonly Alias[] | undefined => {
        lookups++;
        return (graph as Record<string, Alias[]>)[dom];
      };
      const out = resolveAddress(`${l}@${d}`, lookup);
      for (const a of out) {
        assert.ok(!(a.slice(a.lastIndexOf('@') + 1) in graph), `${a} is a local address`);
      }
      assert.equal(new Set(out).size, out.length, 'no address twice');
      // Each address is expanded at most once per level: no exponential walk.
      const addresses = new Set([`${l}@${d}`]);
      let fanout = 1;
      for (const as of Object.values(graph)) {
        for (const a of as) {
          fanout = Math.max(fanout, a.targets.length);
          for (const t of a.targets) addresses.add(t);
        }
      }
      assert.ok(lookups <= 1 + addresses.size * MAX_DEPTH * fanout, `${lookups} lookups`);
    }),
    budget<[Record<string, Alias[]>, [string, string]]>(300, [
      // Found by this property: a self-loop beside a catch-all walked 2^10 paths.
      [
        {
          'one.test': [
            { local: 'a', targets: ['d@one.test', 'a@one.test'] },
            { local: '*', targets: ['a@one.test', 'a@one.test'] },
          ],
        },
        ['a', 'one.test'],
      ],
      // A full mesh of five aliases, five targets each: 5^10 walks before the fix.
      [
        {
          'one.test': ['a', 'b', 'c', 'd', 'e'].map((l) => ({
            local: l,
            targets: ['a', 'b', 'c', 'd', 'e'].map((t) => `${t}@one.test`),
          })),
        },
        ['a', 'one.test'],
      ],
    ]),
  );
});
