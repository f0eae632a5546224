/**
 * A small, strict XML reader for DMARC aggregate reports (RFC 7489
 * Appendix C): elements, attributes (read past, never used), text, the five
 * predefined entities and character references, CDATA sections, comments and
 * processing instructions (the XML declaration). Nothing else.
 *
 * Why not a general XML library: a report comes from anyone on the
 * internet, and the classic XML attacks (external entities that read files
 * or fetch URLs, "billion laughs" entity expansion) all live in the DTD.
 * The aggregate schema needs no DTD, so this reader refuses any `<!DOCTYPE`
 * or `<!ENTITY` outright rather than trying to process one safely, and knows
 * no entity but the five predefined ones (XML 1.0 §4.6). posta has no XML
 * parser among its dependencies, and the subset the schema uses is small.
 *
 * Invariants: the input is bounded by the caller (unpack.ts); the number of
 * elements and the nesting depth are bounded here; namespace prefixes and
 * `xmlns` declarations are dropped, so Microsoft's namespaced `<feedback>`
 * and DMARCbis's `urn:ietf:params:xml:ns:dmarc-2.0` read like the rest;
 * text of an element is its character data, trimmed.
 */

export interface XmlElement {
  /** The local name, without a namespace prefix. */
  name: string;
  children: XmlElement[];
  text: string;
}

export interface XmlLimits {
  maxElements: number;
  maxDepth: number;
}

export class XmlError extends Error {}

const NAME = /[A-Za-z_][\w.:-]*/y;
/** The rest of a start tag: attributes (quoted values may hold ">"), then > or />. */
const TAG_REST = /(?:\s+[A-Za-z_][\w.:-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*\s*(\/?)>/y;
const CLOSE = /\s*>/y;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Character data with its references replaced; an unknown entity is an error (no DTD defines any). */
function decodeText(raw: string, at: number): string {
  if (!raw.includes('&')) return raw;
  return raw.replace(/&([^;&\s]{0,12});?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) throw new XmlError(`a bare "&" near offset ${at}`);
    const named = Object.hasOwn(ENTITIES, ref) ? ENTITIES[ref] : undefined;
    if (named !== undefined) return named;
    const m = /^#(?:x([0-9a-fA-F]{1,6})|([0-9]{1,7}))$/.exec(ref);
    const code = m ? parseInt(m[1] ?? m[2] ?? '', m[1] ? 16 : 10) : NaN;
    // XML 1.0 §2.2: Char excludes most controls, the surrogates and beyond U+10FFFF
    const allowed =
      code === 0x9 ||
      code === 0xa ||
      code === 0xd ||
      (code >= 0x20 && code <= 0xd7ff) ||
      (code >= 0xe000 && code <= 0x10ffff && code !== 0xfffe && code !== 0xffff);
    if (!allowed) throw new XmlError(`the reference "&${ref};" near offset ${at} is not allowed`);
    return String.fromCodePoint(code);
  });
}

const localName = (qname: string) => qname.slice(qname.lastIndexOf(':') + 1);

/** The document's root element; throws XmlError on anything outside the subset or the limits. */
export function parseXml(input: string, limits: XmlLimits): XmlElement {
  const s = input.charCodeAt(0) === 0xfeff ? input.slice(1) : input;
  const stack: XmlElement[] = [];
  const text: string[][] = [];
  let root: XmlElement | undefined;
  let elements = 0;
  let i = 0;
  function fail(what: string): never {
    throw new XmlError(`${what} near offset ${i}`);
  }
  const skipTo = (end: string, what: string) => {
    const j = s.indexOf(end, i);
    if (j < 0) fail(`an unterminated ${what}`);
    const body = s.slice(i, j);
    i = j + end.length;
    return body;
  };
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    if (lt !== i) {
      const chunk = s.slice(i, lt < 0 ? s.length : lt);
      if (stack.length) text[text.length - 1]?.push(decodeText(chunk, i));
      else if (chunk.trim()) fail('text outside the root element');
    }
    if (lt < 0) break;
    i = lt;
    const next = s.charCodeAt(i + 1);
    if (next !== 0x3f && next !== 0x21 && next !== 0x2f) {
      i += 1;
      NAME.lastIndex = i;
      const m = NAME.exec(s);
      if (!m) fail('a malformed tag');
      TAG_REST.lastIndex = NAME.lastIndex;
      const rest = TAG_REST.exec(s);
      if (!rest) fail('a malformed tag');
      i = TAG_REST.lastIndex;
      if (++elements > limits.maxElements) fail(`more than ${limits.maxElements} elements`);
      if (stack.length >= limits.maxDepth) fail(`nesting deeper than ${limits.maxDepth}`);
      const el: XmlElement = { name: localName(m[0]), children: [], text: '' };
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else if (root) fail('a second root element');
      else root = el;
      if (rest[1] !== '/') {
        stack.push(el);
        text.push([]);
      }
    } else if (s.startsWith('<?', i)) {
      i += 2;
      skipTo('?>', 'processing instruction');
    } else if (s.startsWith('<!--', i)) {
      i += 4;
      skipTo('-->', 'comment');
    } else if (s.startsWith('<![CDATA[', i)) {
      i += 9;
      const data = skipTo(']]>', 'CDATA section');
      if (!stack.length) fail('CDATA outside the root element');
      text[text.length - 1]?.push(data);
    } else if (s.startsWith('<!', i)) {
      // DOCTYPE, ENTITY and the rest of the DTD: entity tricks start here
      fail('a document type declaration (refused: reports need none)');
    } else if (s.startsWith('</', i)) {
      i += 2;
      NAME.lastIndex = i;
      const m = NAME.exec(s);
      const open = stack.pop();
      if (!m || !open || localName(m[0]) !== open.name) fail('a closing tag that does not match');
      i = NAME.lastIndex;
      CLOSE.lastIndex = i;
      if (!CLOSE.exec(s)) fail('a malformed closing tag');
      i = CLOSE.lastIndex;
      open.text = (text.pop() ?? []).join('').trim();
    } else {
      fail('a malformed tag');
    }
  }
  if (stack.length)
    throw new XmlError(`the element <${stack[stack.length - 1]?.name}> is not closed`);
  if (!root) throw new XmlError('no root element');
  return root;
}

/** The first child element called `name`. */
export function child(el: XmlElement | undefined, name: string): XmlElement | undefined {
  return el?.children.find((c) => c.name === name);
}

/** Every child element called `name`. */
export function children(el: XmlElement | undefined, name: string): XmlElement[] {
  return el ? el.children.filter((c) => c.name === name) : [];
}

/** The text at a path of child names ("" when any is missing). */
export function textAt(el: XmlElement | undefined, ...path: string[]): string {
  let at = el;
  for (const name of path) at = child(at, name);
  return at?.text ?? '';
}
