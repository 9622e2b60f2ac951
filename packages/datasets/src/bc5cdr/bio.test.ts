import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readBio, readPubTator } from '../node/bc5cdr.js';
import { formatBio, fromBioTags, parseBio, parseBioSentences } from './bio.js';
import { documentsToSentences } from './sentence.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'bc5cdr');

describe('BIO format', () => {
  it('the fixture BIO files hold the sentences built from PubTator', async () => {
    for (const split of ['Training', 'Development', 'Test']) {
      const { sentences } = documentsToSentences((await readPubTator(join(fixtures, `CDR_${split}Set.PubTator.txt`))).documents);
      const bio = await readBio(join(fixtures, `CDR_${split}Set.BIO.tsv`));
      expect(bio.map((s) => [s.tokens, s.spans])).toEqual(sentences.map((s) => [s.tokens, s.spans]));
    }
  });

  it('reads extra columns, bare B/I tags, IOB1 starts and -DOCSTART-', () => {
    const text = '-DOCSTART-\tO\n\nNaloxone\tNN\tB\nreverses\tVBZ\tO\nblood pressure\tNN\tI\n\nA B\nb I-Disease\n';
    expect(parseBio(text, { defaultType: 'Chemical' })).toEqual([
      {
        id: '0',
        tokens: ['Naloxone', 'reverses', 'blood pressure'],
        spans: [
          { type: 'Chemical', start: 0, end: 1 },
          { type: 'Chemical', start: 2, end: 3 },
        ],
      },
      {
        id: '1',
        tokens: ['A', 'b'],
        spans: [
          { type: 'Chemical', start: 0, end: 1 },
          { type: 'Disease', start: 1, end: 2 },
        ],
      },
    ]);
  });

  it('round-trips', () => {
    const s = [{ id: '0', tokens: ['a', 'b', 'c'], spans: [{ type: 'Disease', start: 1, end: 3 }] }];
    expect(formatBio(s)).toBe('a\tO\nb\tB-Disease\nc\tI-Disease\n');
    expect(parseBio(formatBio(s))).toEqual(s);
    expect(() => fromBioTags(['O', 'X-Disease'])).toThrow('BIO tag "X-Disease" at token 1: expected O, B-<type> or I-<type>');
  });
});

describe('BIO reader on malformed input', () => {
  it('rejects malformed lines, empty tokens and unknown tags, naming the line', () => {
    expect(() => parseBio('a\tO\nbroken\n')).toThrow('BIO line 2: expected "token<TAB>tag", got 1 column(s)');
    expect(() => parseBio('a\tO\n\tB-Disease\nc\tO\n')).toThrow('BIO line 2: the token (first column) is empty');
    expect(() => parseBio('a\tO\n  \tO\n')).toThrow('BIO line 2: the token (first column) is empty');
    for (const tag of ['X-Disease', 'B-', 'I-', 'B-a b', 'o', 'B_Disease', '']) {
      expect(() => parseBio(`a\tO\nb\t${tag}\n`)).toThrow(`BIO line 2: tag ${JSON.stringify(tag)} is not O, B-<type> or I-<type>`);
    }
  });

  it("skips and counts malformed lines with malformed: 'warn'", () => {
    const { sentences, warnings } = parseBioSentences('a\tB-Disease\nbroken\n\tO\nb\tI-Disease\nc\tB-\n\nd\tO\n', { malformed: 'warn' });
    expect(sentences).toEqual([
      { id: '0', tokens: ['a', 'b'], spans: [{ type: 'Disease', start: 0, end: 2 }] },
      { id: '1', tokens: ['d'], spans: [] },
    ]);
    expect(warnings).toEqual([
      'BIO line 2: expected "token<TAB>tag", got 1 column(s)',
      'BIO line 3: the token (first column) is empty',
      'BIO line 5: tag "B-" is not O, B-<type> or I-<type>',
    ]);
  });

  it('reads tag sequences: IOB1 starts, type changes and IOBES ends', () => {
    expect(fromBioTags(['I-Chemical', 'I-Disease', 'B-Disease', 'I-Disease', 'O', 'I-Disease'])).toEqual([
      { type: 'Chemical', start: 0, end: 1 },
      { type: 'Disease', start: 1, end: 2 },
      { type: 'Disease', start: 2, end: 4 },
      { type: 'Disease', start: 5, end: 6 },
    ]);
    expect(fromBioTags(['B-X', 'E-X', 'I-X', 'S-X', 'S-X', 'E-X'])).toEqual([
      { type: 'X', start: 0, end: 2 },
      { type: 'X', start: 2, end: 3 },
      { type: 'X', start: 3, end: 4 },
      { type: 'X', start: 4, end: 5 },
      { type: 'X', start: 5, end: 6 },
    ]);
  });
});
