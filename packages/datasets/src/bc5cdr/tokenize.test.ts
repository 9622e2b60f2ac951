import { describe, expect, it } from 'vitest';
import { splitSentences, tokenize, tokenizeWithOffsets } from './tokenize.js';

describe('tokenize', () => {
  it('splits punctuation and clitics like the BC5CDR BIO release', () => {
    expect(tokenize("Mesna significantly reduces IFO's genotoxicity.")).toEqual([
      'Mesna',
      'significantly',
      'reduces',
      'IFO',
      "'s",
      'genotoxicity',
      '.',
    ]);
    expect(tokenize('5-fluorouracil (5-FU) at 2.5 mg/kg, i.e. 10%')).toEqual([
      '5',
      '-',
      'fluorouracil',
      '(',
      '5',
      '-',
      'FU',
      ')',
      'at',
      '2.5',
      'mg',
      '/',
      'kg',
      ',',
      'i',
      '.',
      'e',
      '.',
      '10',
      '%',
    ]);
    expect(tokenize("patients' 'quoted'")).toEqual(['patients', "'", "'", 'quoted', "'"]);
  });

  it('ends tokens at forced breaks (entity boundaries) and reports offsets', () => {
    const text = 'cisplatin-induced nephrotoxicity';
    expect(tokenizeWithOffsets(text, 0, text.length, [0, 9, 18, 32]).map((t) => [t.text, t.start, t.end])).toEqual([
      ['cisplatin', 0, 9],
      ['-', 9, 10],
      ['induced', 10, 17],
      ['nephrotoxicity', 18, 32],
    ]);
    expect(tokenizeWithOffsets('IFOs', 0, 4, [3]).map((t) => t.text)).toEqual(['IFO', 's']);
  });
});

describe('splitSentences', () => {
  it('splits after . ! ? before a non-lowercase character, not after abbreviations or inside entities', () => {
    const text = 'Dose was 5 mg. Effects e.g. Rash were seen (n=3). Was it safe? yes. Dr. Smith agreed!';
    expect(splitSentences(text).map(([s, e]) => text.slice(s, e))).toEqual([
      'Dose was 5 mg.',
      'Effects e.g. Rash were seen (n=3).',
      'Was it safe? yes.',
      'Dr. Smith agreed!',
    ]);
    const t2 = 'Vitamin B. Complex was given.';
    expect(splitSentences(t2, 0, t2.length, [{ start: 0, end: 18 }]).length).toBe(1);
  });
});
