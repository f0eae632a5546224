import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { packingOf, unpack, UNPACK_LIMITS, UnpackError } from './unpack.ts';

const XML = '<?xml version="1.0"?><feedback><report_metadata/></feedback>';
const zip = (files: Record<string, Buffer>, level: 1 | 9 = 9) =>
  Buffer.from(zipSync(files, { level }));

test('gzip, zip (its .xml or .json file) and a plain document each give the document', () => {
  const doc = Buffer.from(XML);
  assert.equal(packingOf(gzipSync(doc)), 'gzip');
  assert.equal(unpack(gzipSync(doc)).toString(), XML);
  const z = zip({ 'readme.txt': Buffer.from('hi'), 'google.com!example.test!1!2.xml': doc });
  assert.equal(packingOf(z), 'zip');
  assert.equal(unpack(z).toString(), XML);
  const stored = Buffer.from(zipSync({ 'r.json': Buffer.from('{"a":1}') }, { level: 0 }));
  assert.equal(unpack(stored).toString(), '{"a":1}');
  assert.equal(unpack(Buffer.from(`\n  ${XML}`)).toString(), `\n  ${XML}`);
});

/** The document cap made small, the ratio out of the way: a bomb need not be a GB to test. */
const SMALL = { ...UNPACK_LIMITS, document: 2 * 1024 * 1024, ratio: 1e9 };

test('a gzip bomb stops inflating at the document cap', () => {
  // a valid gzip file of many members, each 16 MB of zeros: 1 GB in all
  const member = gzipSync(Buffer.alloc(16 * 1024 * 1024));
  const bomb = Buffer.concat(Array.from({ length: 64 }, () => member));
  assert.throws(() => unpack(bomb, SMALL), /gzip data inflates past 2097152 bytes/);
  assert.throws(() => unpack(bomb), /gzip data inflates past 8388608 bytes/);
});

test('a zip bomb stops at the cap whatever its headers declare', () => {
  const bomb = zip({ 'a.xml': Buffer.alloc(8 * 1024 * 1024) }, 1);
  assert.throws(() => unpack(bomb, SMALL), /zip file inflates past 2097152 bytes/);
  // the same with the declared size made small: the lie does not help
  const lying = Buffer.from(bomb);
  const central = lying.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  lying.writeUInt32LE(1000, central + 24);
  lying.writeUInt32LE(1000, 22);
  assert.throws(() => unpack(lying, SMALL), /zip file inflates past 2097152 bytes/);
});

test('past the floor, the ratio bounds what a small attachment may inflate to', () => {
  const five = gzipSync(Buffer.alloc(5 * 1024 * 1024)); // about 5 KB: a ratio of 1000
  assert.throws(() => unpack(five), /inflates past 1048576 bytes/);
  const limits = { ...UNPACK_LIMITS, ratio: 2000 };
  assert.equal(unpack(five, limits).length, 5 * 1024 * 1024);
});

const refused: [string, Buffer, RegExp][] = [
  ['an attachment over the bound', Buffer.alloc(UNPACK_LIMITS.attachment + 1, 0x3c), /over/],
  [
    'broken gzip',
    Buffer.concat([gzipSync(XML).subarray(0, 20), Buffer.alloc(9)]),
    /gzip data is broken/,
  ],
  ['a zip with no report in it', zip({ 'a.txt': Buffer.from('x') }), /no \.xml or \.json/],
  ['a truncated zip', zip({ 'a.xml': Buffer.from(XML.repeat(50)) }).subarray(0, 60), /zip file/],
  ['something else', Buffer.from('%PDF-1.4 not a report'), /neither gzip, zip, XML nor JSON/],
  ['nothing', Buffer.alloc(0), /neither/],
];
for (const [what, bytes, message] of refused) {
  test(`refuses ${what}`, () => {
    assert.throws(
      () => unpack(bytes),
      (err: Error) => {
        assert.ok(err instanceof UnpackError, err.message);
        assert.match(err.message, message);
        return true;
      },
    );
  });
}
