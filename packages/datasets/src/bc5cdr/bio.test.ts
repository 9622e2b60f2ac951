import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readBio, readPubTator } from '../node/bc5cdr.js';
import { formatBio, fromBioTags, parseBio } from './bio.js';
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
