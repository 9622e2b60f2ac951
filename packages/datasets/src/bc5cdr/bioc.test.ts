import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readBioC, readPubTator } from '../node/bc5cdr.js';
import { formatBioC, parseBioC } from './bioc.js';
import { parseXml } from './xml.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'bc5cdr');

describe('BioC and PubTator readers', () => {
  it('agree on every fixture split', async () => {
    for (const split of ['Training', 'Development', 'Test']) {
      const pubtator = await readPubTator(join(fixtures, `CDR_${split}Set.PubTator.txt`));
      const bioc = await readBioC(join(fixtures, `CDR_${split}Set.BioC.xml`));
      expect(bioc).toEqual(pubtator);
    }
    const train = await readPubTator(join(fixtures, 'CDR_TrainingSet.PubTator.txt'));
    expect(train.documents.length).toBe(8);
    expect(train.documents[0]!.mentions.slice(0, 2)).toEqual([
      { start: 0, end: 9, text: 'Cisplatin', type: 'Chemical', conceptId: 'F0001' },
      { start: 18, end: 32, text: 'nephrotoxicity', type: 'Disease', conceptId: 'F1001' },
    ]);
  });
});

describe('parseBioC', () => {
  const xml = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE collection SYSTEM "BioC.dtd" [ <!ENTITY x "y"> ]>
<collection><source>test</source>
<!-- a comment with <tags> -->
<document><id>7</id>
<passage><infon key="type">title</infon><offset>0</offset><text>A &amp; B &lt;C&gt;</text>
<annotation id='1'><infon key="type">Chemical</infon><infon key="MESH">M1</infon>
<location offset="4" length="1"/><text><![CDATA[B]]></text></annotation></passage>
<passage><infon key="type">abstract</infon><offset>11</offset><text>tail&#x20;&#65;</text></passage>
<relation id="R0"><infon key="relation">CID</infon></relation>
</document></collection>`;

  it('reads entities, CDATA, self-closing tags and skips the DOCTYPE, comments and relations', () => {
    const { documents } = parseBioC(xml);
    expect(documents).toEqual([
      {
        id: '7',
        passages: [
          { type: 'title', offset: 0, text: 'A & B <C>' },
          { type: 'abstract', offset: 11, text: 'tail A' },
        ],
        text: 'A & B <C>  tail A',
        mentions: [{ start: 4, end: 5, text: 'B', type: 'Chemical', conceptId: 'M1' }],
      },
    ]);
    expect(parseBioC(formatBioC(documents)).documents).toEqual(documents);
  });

  it('checks mention text against the passage text', () => {
    expect(() => parseBioC(xml.replace('offset="4"', 'offset="2"'))).toThrow(
      'document 7: mention Chemical at 2-3: expected "B", found "&" in the text',
    );
  });

  it('says when the file is not BioC', () => {
    expect(() => parseBioC('<html><body/></html>')).toThrow('BioC: no <collection> element');
  });
});

describe('parseXml', () => {
  it('tolerates stray and missing end tags', () => {
    const root = parseXml('<a x="1"><b>t</c></b><d></a>');
    expect(root.children).toEqual([
      {
        name: 'a',
        attributes: { x: '1' },
        children: [
          { name: 'b', attributes: {}, children: ['t'] },
          { name: 'd', attributes: {}, children: [] },
        ],
      },
    ]);
  });
});

/** CPU milliseconds `fn` takes (wall time means little on a shared machine). */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const d = process.cpuUsage(before);
  return (d.user + d.system) / 1000;
}

describe('parseBioC and parseXml on hostile input', () => {
  const doc = (passages: string) => `<collection><document><id>7</id>${passages}</document></collection>`;
  const passage = (offset: string, extra = '') => `<passage><offset>${offset}</offset><text>abc</text>${extra}</passage>`;
  const annotation = (location: string) => `<annotation id="a1"><infon key="type">Chemical</infon>${location}<text>b</text></annotation>`;

  it('rejects 50,000 unclosed elements and 50,000 stray end tags (350 KB) at once, naming the depth', () => {
    const xml = `<collection>${'<a>'.repeat(50_000)}${'</b>'.repeat(50_000)}</collection>`;
    expect(() => parseXml(xml)).toThrow('XML: elements nested more than 256 deep at character 777');
    expect(cpuMs(() => expect(() => parseXml(xml)).toThrow())).toBeLessThan(1000); // before: over 120 s
  });

  it('drops stray end tags in constant time each', () => {
    const xml = `<r>${'<a>'.repeat(250)}x${'</b>'.repeat(200_000)}${'</a>'.repeat(250)}<z/></r>`;
    let root = parseXml('');
    expect(cpuMs(() => (root = parseXml(xml)))).toBeLessThan(2000);
    const r = root.children[0] as { children: { name: string }[] };
    expect(r.children.map((c) => c.name)).toEqual(['a', 'z']);
  });

  it('rejects 10,000 nested elements with an error instead of overflowing the stack', () => {
    const xml = doc(`<passage><offset>0</offset><text>${'<i>'.repeat(10_000)}x${'</i>'.repeat(10_000)}</text></passage>`);
    expect(() => parseBioC(xml)).toThrow('XML: elements nested more than 256 deep at character');
  });

  it('reads text 250 elements deep without recursion', () => {
    const xml = doc(`<passage><offset>0</offset><text>${'<i>'.repeat(240)}abc${'</i>'.repeat(240)}</text></passage>`);
    expect(parseBioC(xml).documents[0]!.text).toBe('abc');
  });

  it('rejects character references that are not XML characters, with their position', () => {
    for (const ref of ['&#x110000;', '&#1114112;', '&#xD800;', '&#0;', '&#x1;', '&#9999999999;']) {
      expect(() => parseBioC(doc(`<passage><offset>0</offset><text>a${ref}</text></passage>`))).toThrow(
        `XML: character reference "${ref}" at character 66 is not a valid XML character`,
      );
    }
    expect(() => parseXml('<a b="&#x110000;"/>')).toThrow('XML: character reference "&#x110000;" at character 0');
    expect(parseXml('<a>&#x10FFFF;&constructor;&#9;</a>').children).toEqual([
      { name: 'a', attributes: {}, children: ['\u{10ffff}&constructor;\t'] },
    ]);
  });

  it('keeps an attribute named __proto__ as an attribute', () => {
    const a = parseXml('<a __proto__="x" key="k"/>').children[0] as { attributes: Record<string, string> };
    expect(Object.keys(a.attributes)).toEqual(['__proto__', 'key']);
    expect(Object.getPrototypeOf(a.attributes)).toBe(Object.prototype);
  });

  it('requires non-negative decimal integers for passage offsets', () => {
    for (const offset of ['Infinity', 'abc', '1.5', '0x10', '-1', '', '1e3', '99999999999999999999']) {
      expect(() => parseBioC(doc(passage(offset)))).toThrow(
        `BioC document 7: passage #1 has <offset> ${JSON.stringify(offset)}, expected a non-negative decimal integer`,
      );
    }
    expect(parseBioC(doc(passage('\n 0 \n'))).documents[0]!.text).toBe('abc');
  });

  it('requires non-negative decimal integers for location offsets and lengths', () => {
    for (const bad of ['Infinity', 'abc', '1.5', '0x10', '-1', '']) {
      expect(() => parseBioC(doc(passage('0', annotation(`<location offset="${bad}" length="1"/>`))))).toThrow(
        `BioC document 7: annotation "a1" in passage #1: <location> #1 has offset ${JSON.stringify(bad)}, expected a non-negative decimal integer`,
      );
      expect(() => parseBioC(doc(passage('0', annotation(`<location offset="1" length="${bad}"/>`))))).toThrow(
        `<location> #1 has length ${JSON.stringify(bad)}, expected a non-negative decimal integer`,
      );
    }
    expect(() => parseBioC(doc(passage('0', annotation('<location length="1"/>'))))).toThrow('has offset (missing)');
  });

  it('bounds the text laid out from passage offsets', () => {
    expect(() => parseBioC(doc(passage('999999999999999')))).toThrow(
      'document 7: passage "" at offset 999999999999999 ends beyond 16777216 characters',
    );
  });

  it('reads 200,000 locations of one annotation in linear time', () => {
    const xml = doc(passage('0', annotation(`${'<location offset="1" length="1"/>'.repeat(200_000)}<location offset="1" length="1"/>`)));
    let documents = parseBioC('<collection/>').documents;
    expect(cpuMs(() => (documents = parseBioC(xml).documents))).toBeLessThan(2000); // before: "Maximum call stack size exceeded"
    expect(documents[0]!.mentions).toEqual([{ start: 1, end: 2, text: 'b', type: 'Chemical' }]);
  });

  it("skips and reports malformed documents, passages and annotations with malformed: 'warn'", () => {
    const xml = `<collection>
<document><passage><offset>0</offset><text>x</text></passage></document>
<document><id>8</id>${passage('x')}${passage('4', annotation('<location offset="5" length="1"/>'))}${passage('8', annotation('<location offset="1.5" length="1"/>') + annotation(''))}</document>
</collection>`;
    expect(() => parseBioC(xml)).toThrow('BioC: document #1 has no <id>');
    const { documents, warnings } = parseBioC(xml, { malformed: 'warn' });
    expect(documents.map((d) => [d.id, d.text, d.mentions.length])).toEqual([['8', '    abc abc', 1]]);
    expect(warnings).toEqual([
      'BioC: document #1 has no <id>',
      'BioC document 8: passage #1 has <offset> "x", expected a non-negative decimal integer',
      'BioC document 8: annotation "a1" in passage #3: <location> #1 has offset "1.5", expected a non-negative decimal integer',
      'BioC document 8: annotation "a1" in passage #3 has no <location>',
    ]);
  });
});
