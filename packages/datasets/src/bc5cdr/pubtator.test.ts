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
