/**
 * A small, tolerant XML reader for BioC files: elements, attributes, text, CDATA and the five
 * predefined plus numeric character references. The prolog, DOCTYPE (with an internal subset),
 * comments and processing instructions are skipped. A stray end tag closes up to its matching open
 * element, or is ignored when none is open; elements left open at the end are closed.
 */

export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: XmlNode[];
}

export type XmlNode = XmlElement | string;

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function decodeXmlEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    return NAMED[ref] ?? whole;
  });
}

function parseAttributes(source: string, tag: string): Record<string, string> {
  const attributes: Record<string, string> = {};
  const re = /([^\s=/>]+)\s*(?:=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  for (let m = re.exec(source); m; m = re.exec(source)) {
    const value = m[2] ?? m[3] ?? m[4] ?? '';
    attributes[m[1]!] = decodeXmlEntities(value);
  }
  if (Object.keys(attributes).length === 0 && source.trim() !== '') throw new Error(`XML: cannot read the attributes of <${tag}>`);
  return attributes;
}

/** Parses `source` and returns a synthetic root element (name `#document`) holding the top-level nodes. */
export function parseXml(source: string): XmlElement {
  const root: XmlElement = { name: '#document', attributes: {}, children: [] };
  const stack: XmlElement[] = [root];
  const top = () => stack[stack.length - 1]!;
  let pos = 0;
  const n = source.length;
  while (pos < n) {
    const lt = source.indexOf('<', pos);
    const textEnd = lt === -1 ? n : lt;
    if (textEnd > pos) top().children.push(decodeXmlEntities(source.slice(pos, textEnd)));
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
      const at = stack.findLastIndex((e) => e.name === name);
      if (at > 0) stack.length = at;
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
      if (!nameMatch) throw new Error(`XML: malformed tag at character ${lt}: ${JSON.stringify(source.slice(lt, lt + 40))}`);
      const name = nameMatch[0];
      const element: XmlElement = { name, attributes: parseAttributes(inner.slice(name.length), name), children: [] };
      top().children.push(element);
      if (!selfClosing) stack.push(element);
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

/** All text inside `e`, concatenated. */
export function textContent(e: XmlElement): string {
  return e.children.map((c) => (typeof c === 'string' ? c : textContent(c))).join('');
}
