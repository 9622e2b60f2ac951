import { describe, expect, it } from 'vitest';
import { formatPubTator, parsePubTator } from './pubtator.js';

const SOURCE = [
  '100|t|Drug X causes rash.',
  '100|a|Rash and fever followed drug X.',
  '100\t0\t6\tDrug X\tChemical\tC1',
  '100\t14\t18\trash\tDisease\tD1',
  '100\t20\t24\tRash\tDisease\tD1',
  '100\t29\t34\tfever\tDisease\tD2|D3\tfever|pyrexia',
  '100\tCID\tC1\tD1',
  '',
  '200|t|No mentions here.',
  '200|a|',
  '',
].join('\n');

describe('parsePubTator', () => {
  it('reads titles, abstracts and mentions over title + " " + abstract, ignoring relations', () => {
    const { documents, warnings } = parsePubTator(SOURCE);
    expect(warnings).toEqual([]);
    expect(documents.map((d) => d.id)).toEqual(['100', '200']);
    const d = documents[0]!;
    expect(d.text).toBe('Drug X causes rash. Rash and fever followed drug X.');
    expect(d.passages).toEqual([
      { type: 'title', offset: 0, text: 'Drug X causes rash.' },
      { type: 'abstract', offset: 20, text: 'Rash and fever followed drug X.' },
    ]);
    expect(d.mentions).toEqual([
      { start: 0, end: 6, text: 'Drug X', type: 'Chemical', conceptId: 'C1' },
      { start: 14, end: 18, text: 'rash', type: 'Disease', conceptId: 'D1' },
      { start: 20, end: 24, text: 'Rash', type: 'Disease', conceptId: 'D1' },
      { start: 29, end: 34, text: 'fever', type: 'Disease', conceptId: 'D2|D3' },
    ]);
    expect(documents[1]!.mentions).toEqual([]);
  });

  it('round-trips through formatPubTator', () => {
    const { documents } = parsePubTator(SOURCE);
    expect(parsePubTator(formatPubTator(documents)).documents).toEqual(documents);
  });

  it('rejects a mention whose text differs from the slice, naming PMID, offsets, expected and found', () => {
    const bad = SOURCE.replace('100\t14\t18\trash', '100\t13\t17\trash');
    expect(() => parsePubTator(bad)).toThrow('document 100: mention Disease at 13-17: expected "rash", found " ras" in the text');
  });

  it("drops and counts mismatched mentions with mismatch: 'warn'", () => {
    const bad = SOURCE.replace('100\t14\t18\trash', '100\t13\t17\trash').replace('100\t0\t6\t', '100\t0\t90\t');
    const { documents, warnings } = parsePubTator(bad, { mismatch: 'warn' });
    expect(warnings).toEqual([
      'document 100: mention Chemical at 0-90 is outside the text (length 51)',
      'document 100: mention Disease at 13-17: expected "rash", found " ras" in the text',
    ]);
    expect(documents[0]!.mentions.map((m) => m.text)).toEqual(['Rash', 'fever']);
  });

  it('rejects malformed annotation lines', () => {
    expect(() => parsePubTator('1|t|a b\n1\t0\t1\n')).toThrow(
      'PubTator line 2: expected "PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>id]"',
    );
    expect(() => parsePubTator('1|t|a b\n2\t0\t1\ta\tChemical\n')).toThrow(
      'PubTator line 2: annotation for PMID 2 outside its document (current document: 1)',
    );
  });
});

describe('parsePubTator on malformed input', () => {
  const doc = (start: string, end = '6') =>
    `1|t|Drug X causes rash.\n1|a|Fever.\n1\t${start}\t${end}\tDrug X\tChemical\tC1\n1\t14\t18\trash\tDisease\tD1\n\n`;

  it('rejects a mention whose start or end offset is not a non-negative decimal integer (it is not a relation line)', () => {
    for (const bad of ['-1', '1.0', '', ' 0', 'abc', '0x1', '1e2', 'Infinity', '99999999999999999999']) {
      expect(() => parsePubTator(doc(bad))).toThrow(
        `PubTator line 3: start offset ${JSON.stringify(bad)} is not a non-negative decimal integer`,
      );
      expect(() => parsePubTator(doc('0', bad))).toThrow(
        `PubTator line 3: end offset ${JSON.stringify(bad)} is not a non-negative decimal integer`,
      );
    }
  });

  it("skips and counts malformed lines with malformed: 'warn'", () => {
    const source = `${doc('abc')}2|t|Second.\nnot an annotation\n2\t0\t6\tSecond\tChemical\n3\t0\t1\tx\tChemical\n\n4|a|no title\n\n`;
    const { documents, warnings } = parsePubTator(source, { malformed: 'warn' });
    expect(documents.map((d) => [d.id, d.mentions.map((m) => m.text)])).toEqual([
      ['1', ['rash']],
      ['2', ['Second']],
    ]);
    expect(warnings).toEqual([
      'PubTator line 3: start offset "abc" is not a non-negative decimal integer',
      'PubTator line 7: expected "PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>id]", a relation "PMID<TAB>CID<TAB>…" or "PMID|t|…", got 1 tab-separated column(s)',
      'PubTator line 9: annotation for PMID 3 outside its document (current document: 2)',
      'PubTator document 4 (line 11) has no title line "4|t|…"',
    ]);
    expect(() => parsePubTator(source)).toThrow('PubTator line 3: start offset "abc"');
  });

  it('still ignores relation lines, with or without extra columns', () => {
    const source = `${doc('0')}1\tCID\tC1\tD1\n1\tAssociation\tC1\tD1\tNovel\n1\tCID\tC1\n`;
    expect(parsePubTator(source).documents[0]!.mentions.length).toBe(2);
  });

  it('accepts offsets that count code points (as Python does) after a character outside the BMP, converting them', () => {
    // 𝛼 is one code point but two UTF-16 units: Python writes 0-12 and 17-24, JavaScript counts 0-13 and 18-25.
    const source =
      '1|t|\u{1d6fc}-Tocopherol and aspirin.\n1|a|x\n1\t0\t12\t\u{1d6fc}-Tocopherol\tChemical\tC1\n1\t17\t24\taspirin\tChemical\tC2\n\n';
    const { documents, warnings } = parsePubTator(source);
    expect(warnings).toEqual([]);
    expect(documents[0]!.mentions).toEqual([
      { start: 0, end: 13, text: '\u{1d6fc}-Tocopherol', type: 'Chemical', conceptId: 'C1' },
      { start: 18, end: 25, text: 'aspirin', type: 'Chemical', conceptId: 'C2' },
    ]);
    // UTF-16 offsets of the same text are read as they are.
    expect(parsePubTator(formatPubTator(documents)).documents).toEqual(documents);
    // Offsets that match neither way are still an error.
    expect(() => parsePubTator(source.replace('\t17\t24\t', '\t16\t23\t'))).toThrow(
      'document 1: mention Chemical at 16-23: expected "aspirin"',
    );
  });
});
