import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml, textAt, XmlError } from './xml.ts';

const LIMITS = { maxElements: 100, maxDepth: 8 };

test('reads elements, text, references, CDATA, comments and the declaration; drops namespace prefixes', () => {
  const root = parseXml(
    '\uFEFF<?xml version="1.0" encoding="UTF-8"?>\n<!-- a report -->\n' +
      '<r:feedback xmlns:r="urn:ietf:params:xml:ns:dmarc-2.0" a=\'x > y\'>' +
      '<org_name>A &amp; B &lt;&#233;&#xE9;&gt;</org_name><empty/>' +
      '<r:note><![CDATA[<not a tag> & co]]></r:note></r:feedback>\n',
    LIMITS,
  );
  assert.equal(root.name, 'feedback');
  assert.deepEqual(
    root.children.map((c) => c.name),
    ['org_name', 'empty', 'note'],
  );
  assert.equal(textAt(root, 'org_name'), 'A & B <éé>');
  assert.equal(textAt(root, 'note'), '<not a tag> & co');
  assert.equal(textAt(root, 'missing', 'deeper'), '');
});

const refused: [string, string, RegExp][] = [
  [
    'billion laughs (entity expansion)',
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><feedback>&lol2;</feedback>',
    /document type declaration/,
  ],
  [
    'an external entity',
    '<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><feedback>&x;</feedback>',
    /document type declaration/,
  ],
  ['an undeclared entity', '<feedback>&x;</feedback>', /not allowed/],
  ['a bare ampersand', '<feedback>a & b</feedback>', /bare "&"/],
  ['a NUL character reference', '<feedback>&#0;</feedback>', /not allowed/],
  ['a closing tag that does not match', '<feedback><a></b></feedback>', /does not match/],
  ['an unclosed element', '<feedback><a>', /not closed/],
  ['a second root', '<a/><b/>', /second root/],
  ['text outside the root', '<a/>junk', /outside the root/],
  ['no root at all', '  ', /no root/],
  ['an unterminated comment', '<a><!-- x</a>', /unterminated comment/],
  ['a malformed tag', '<a><1b/></a>', /malformed tag/],
  ['an attribute without quotes', '<a b=c></a>', /malformed tag/],
  ['too deep', '<a><a><a><a><a><a><a><a><a/></a></a></a></a></a></a></a></a>', /nesting deeper/],
  ['too many elements', `<a>${'<b/>'.repeat(100)}</a>`, /more than 100 elements/],
];

for (const [what, xml, message] of refused) {
  test(`refuses ${what}`, () => {
    assert.throws(
      () => parseXml(xml, LIMITS),
      (err: Error) => {
        assert.ok(err instanceof XmlError, err.message);
        assert.match(err.message, message);
        return true;
      },
    );
  });
}
