/**
 * A small, tolerant XML reader for BioC files: elements, attributes, text, CDATA and the five
 * predefined plus numeric character references. The prolog, DOCTYPE (with an internal subset),
 * comments and processing instructions are skipped. A stray end tag closes up to its matching open
 * element, or is ignored when none is open; elements left open at the end are closed.
 *
 * The reader is linear in its input (an end tag with no open element of its name is dropped in
 * constant time), nests at most {@link MAX_XML_DEPTH} elements, and rejects a character reference
 * that is not an XML character (`&#x110000;`, `&#0;`, a surrogate) with an error giving its position.
 */

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlNode[];
}

export type XmlNode = XmlElement | string;

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Deepest element nesting accepted (BioC needs 6). */
export const MAX_XML_DEPTH = 256;

/** XML 1.0 `Char`: tab, newline, carriage return, and U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF. */
function isXmlChar(cp: number): boolean {
  return (
    cp === 0x9 ||
    cp === 0xa ||
    cp === 0xd ||
    (cp >= 0x20 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd) ||
    (cp >= 0x10000 && cp <= 0x10ffff)
  );
}

/**
 * Replaces the five predefined entities and numeric character references; other named references are
 * left as they are. `at` (the position of `s` in the file) is used in errors only.
 */
export function decodeXmlEntities(s: string, at = 0): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z]+);/g, (whole, ref: string, offset: number) => {
    if (ref.startsWith('#')) {
      const digits = ref.startsWith('#x') ? ref.slice(2) : ref.slice(1);
      const cp = digits.length > 8 ? Number.POSITIVE_INFINITY : Number.parseInt(digits, ref.startsWith('#x') ? 16 : 10);
      if (!isXmlChar(cp)) {
        const shown = whole.length > 20 ? `${whole.slice(0, 20)}…` : whole;
        throw new Error(
          `XML: character reference "${shown}" at character ${at + offset} is not a valid XML character (code point beyond U+10FFFF, a surrogate or a control)`,
        );
      }
      return String.fromCodePoint(cp);
    }
    return Object.hasOwn(NAMED, ref) ? NAMED[ref]! : whole;
  });
}

function parseAttributes(source: string, tag: string, at: number): Record<string, string> {
  const attributes: Record<string, string> = {};
  const re = /([^\s=/>]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const value = m[2] ?? m[3] ?? m[4] ?? '';
    const key = m[1]!;
    // An attribute named __proto__ is an ordinary key, not the prototype.
    if (key === '__proto__')
      Object.defineProperty(attributes, key, { value: decodeXmlEntities(value, at), enumerable: true, writable: true });
    else attributes[key] = decodeXmlEntities(value, at);
  }
  if (Object.keys(attributes).length === 0 && source.trim() !== '')
    throw new Error(`XML: cannot read the attributes of <${tag.slice(0, 40)}> at character ${at}`);
  return attributes;
}

/** Parses `source` and returns a synthetic root element (name `#document`) holding the top-level nodes. */
export function parseXml(source: string): XmlElement {
  const root: XmlElement = { name: '#document', attributes: {}, children: [] };
  const stack: XmlElement[] = [root];
  // How many elements of each name are open, so that a stray end tag costs O(1).
  const open = new Map<string, number>();
  const top = () => stack[stack.length - 1]!;
  let pos = 0;
  const n = source.length;
  while (pos < n) {
    const lt = source.indexOf('<', pos);
    const textEnd = lt === -1 ? n : lt;
    if (textEnd > pos) top().children.push(decodeXmlEntities(source.slice(pos, textEnd), pos));
    if (lt === -1) break;
    if (source.startsWith('<!--', lt)) {
      const end = source.indexOf('-->', lt + 4);
      pos = end === -1 ? n : end + 3;
    } else if (source.startsWith('<![CDATA[', lt)) {
      const end = source.indexOf(']]>', lt + 9);
      top().children.push(source.slice(lt + 9, end === -1 ? n : end));
      pos = end === -1 ? n : end + 3;
    } else if (source.startsWith('<?', lt)) {
      const end = source.indexOf('?>', lt + 2);
      pos = end === -1 ? n : end + 2;
    } else if (source.startsWith('<!', lt)) {
      // DOCTYPE or another declaration; skip a bracketed internal subset.
      let i = lt + 2;
      let depth = 0;
      while (i < n && !(source[i] === '>' && depth === 0)) {
        if (source[i] === '[') depth++;
        else if (source[i] === ']') depth--;
        i++;
      }
      pos = i + 1;
    } else if (source[lt + 1] === '/') {
      const gt = source.indexOf('>', lt);
      const name = source.slice(lt + 2, gt === -1 ? n : gt).trim();
      pos = gt === -1 ? n : gt + 1;
      if ((open.get(name) ?? 0) > 0) {
        // Each pop undoes one push, so all end tags together cost O(number of elements).
        for (;;) {
          const closed = stack.pop()!;
          open.set(closed.name, open.get(closed.name)! - 1);
          if (closed.name === name) break;
        }
      }
    } else {
      // Start tag: find the closing '>' outside quoted attribute values.
      let i = lt + 1;
      let quote: string | undefined;
      while (i < n) {
        const c = source[i]!;
        if (quote) {
          if (c === quote) quote = undefined;
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '>') break;
        i++;
      }
      let inner = source.slice(lt + 1, i);
      pos = i + 1;
      const selfClosing = inner.endsWith('/');
      if (selfClosing) inner = inner.slice(0, -1);
      const nameMatch = /^[^\s/>]+/.exec(inner);
      if (!nameMatch) throw new Error(`XML: malformed tag at character ${lt}: "<" is not followed by an element name`);
      const name = nameMatch[0];
      const element: XmlElement = { name, attributes: parseAttributes(inner.slice(name.length), name, lt), children: [] };
      top().children.push(element);
      if (!selfClosing) {
        if (stack.length > MAX_XML_DEPTH) {
          throw new Error(`XML: elements nested more than ${MAX_XML_DEPTH} deep at character ${lt}; a BioC file nests about 6`);
        }
        stack.push(element);
        open.set(name, (open.get(name) ?? 0) + 1);
      }
    }
  }
  return root;
}

/** Child elements of `e` named `name`. */
export function childElements(e: XmlElement, name: string): XmlElement[] {
  return e.children.filter((c): c is XmlElement => typeof c !== 'string' && c.name === name);
}

/** The first child element named `name`, if any. */
export function childElement(e: XmlElement, name: string): XmlElement | undefined {
  return childElements(e, name)[0];
}

/** All text inside `e`, concatenated (iterative: depth does not use the call stack). */
export function textContent(e: XmlElement): string {
  const parts: string[] = [];
  const pending: XmlNode[] = [...e.children].reverse();
  while (pending.length > 0) {
    const node = pending.pop()!;
    if (typeof node === 'string') parts.push(node);
    else for (let i = node.children.length - 1; i >= 0; i--) pending.push(node.children[i]!);
  }
  return parts.join('');
}
