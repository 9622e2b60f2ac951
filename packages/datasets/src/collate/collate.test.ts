import { describe, expect, it } from 'vitest';
import { batchIndices, batchItems } from './batches.js';
import { collate, collateCausalLM } from './collate.js';
import type { TextTokenizer } from './tokenizer.js';

/** One id per character (its code point); BOS 1 first unless addSpecialTokens is false; pad 0, EOS 2. */
const charTokenizer: TextTokenizer = {
  encode: (text, options) => [...(options?.addSpecialTokens === false ? [] : [1]), ...[...text].map((c) => c.codePointAt(0)!)],
  padTokenId: 0,
  eosTokenId: 2,
};

describe('collate (classification)', () => {
  const examples = [
    { text: 'abc', label: 3 },
    { text: 'a', label: 1 },
    { text: 'abcdefg', label: 0 },
  ];

  it('pads right to the longest row, truncates to maxLength and keeps labels', () => {
    const b = collate(examples, { tokenizer: charTokenizer, maxLength: 5 });
    expect(b.inputIds).toEqual([
      [1, 97, 98, 99, 0],
      [1, 97, 0, 0, 0],
      [1, 97, 98, 99, 100],
    ]);
    expect(b.attentionMask).toEqual([
      [1, 1, 1, 1, 0],
      [1, 1, 0, 0, 0],
      [1, 1, 1, 1, 1],
    ]);
    expect(b.labels).toEqual([3, 1, 0]);
    // Study A reads the last real token at sum(mask) - 1.
    expect(b.attentionMask.map((m) => m.reduce((x, y) => x + y) - 1)).toEqual([3, 1, 4]);
  });

  it('pads left, pads to maxLength, sorts by length', () => {
    const b = collate(examples.slice(0, 2), {
      tokenizer: charTokenizer,
      maxLength: 6,
      padding: 'left',
      padTo: 'maxLength',
      sortByLength: true,
    });
    expect(b.inputIds).toEqual([
      [0, 0, 1, 97, 98, 99],
      [0, 0, 0, 0, 1, 97],
    ]);
    expect(b.attentionMask).toEqual([
      [0, 0, 1, 1, 1, 1],
      [0, 0, 0, 0, 1, 1],
    ]);
    expect(b.order).toEqual([0, 1]);
    const sorted = collate([examples[1]!, examples[0]!], { tokenizer: charTokenizer, maxLength: 6, sortByLength: true });
    expect(sorted.order).toEqual([1, 0]);
    expect(sorted.labels).toEqual([3, 1]);
  });

  it('keeps a trailing EOS when truncating (Hugging Face truncates before adding special tokens)', () => {
    const eosTokenizer: TextTokenizer = { ...charTokenizer, encode: (t) => [...[...t].map((c) => c.codePointAt(0)!), 2] };
    expect(collate([{ text: 'abcdef', label: 0 }], { tokenizer: eosTokenizer, maxLength: 4 }).inputIds).toEqual([[97, 98, 99, 2]]);
  });

  it('errors on long input without truncation', () => {
    expect(() => collate(examples, { tokenizer: charTokenizer, maxLength: 5, truncation: false })).toThrow(
      'example 2 has 8 tokens, more than maxLength 5; raise maxLength or pass truncation: true',
    );
  });
});

describe('collateCausalLM (NER by generation)', () => {
  it('masks the prompt and padding with -100 and keeps answer ids and EOS', () => {
    const b = collateCausalLM(
      [
        { prompt: 'Q:', answer: ' x' },
        { prompt: 'Q:', answer: ' xyz' },
      ],
      { tokenizer: charTokenizer, maxLength: 16 },
    );
    expect(b.inputIds).toEqual([
      [1, 81, 58, 32, 120, 2, 0, 0],
      [1, 81, 58, 32, 120, 121, 122, 2],
    ]);
    expect(b.attentionMask).toEqual([
      [1, 1, 1, 1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1, 1, 1, 1],
    ]);
    expect(b.labels).toEqual([
      [-100, -100, -100, 32, 120, 2, -100, -100],
      [-100, -100, -100, 32, 120, 121, 122, 2],
    ]);
  });

  it('pads left and truncates the end of long answers', () => {
    const b = collateCausalLM(
      [
        { prompt: 'Q:', answer: ' xyz' },
        { prompt: 'Q:', answer: '' },
      ],
      { tokenizer: charTokenizer, maxLength: 5, padding: 'left' },
    );
    expect(b.inputIds).toEqual([
      [1, 81, 58, 32, 120],
      [0, 1, 81, 58, 2],
    ]);
    expect(b.labels).toEqual([
      [-100, -100, -100, 32, 120],
      [-100, -100, -100, -100, 2],
    ]);
  });
});

describe('batchIndices', () => {
  it('keeps order without a seed, and drops the short last batch on request', () => {
    expect(batchIndices(5, { batchSize: 2 })).toEqual([[0, 1], [2, 3], [4]]);
    expect(batchIndices(5, { batchSize: 2, dropLast: true })).toEqual([
      [0, 1],
      [2, 3],
    ]);
  });

  it('shuffles deterministically per seed and epoch', () => {
    const e0 = batchIndices(10, { batchSize: 4, seed: 42 });
    expect(e0).toEqual([
      [4, 8, 1, 6],
      [0, 9, 2, 5],
      [7, 3],
    ]); // seededShuffle(0..9, 42)
    expect(batchIndices(10, { batchSize: 4, seed: 42 })).toEqual(e0);
    expect(batchIndices(10, { batchSize: 4, seed: 42, epoch: 1 })).not.toEqual(e0);
  });

  it('groups similar lengths with bucketing', () => {
    const lengths = [5, 1, 9, 3, 7, 2, 8, 4];
    const batches = batchIndices(8, { batchSize: 2, seed: 7, lengths, bucketSize: 4 });
    expect(batches.flat().sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // one bucket holds everything: pairs are neighbours in sorted length order
    const pairs = batches.map((b) => b.map((i) => lengths[i]!).sort((x, y) => y - x));
    expect(pairs.sort((a, b) => b[0]! - a[0]!)).toEqual([
      [9, 8],
      [7, 5],
      [4, 3],
      [2, 1],
    ]);
    expect(batchItems(['a', 'b', 'c'], { batchSize: 2 })).toEqual([['a', 'b'], ['c']]);
  });
});
