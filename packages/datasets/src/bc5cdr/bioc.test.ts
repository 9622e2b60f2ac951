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
