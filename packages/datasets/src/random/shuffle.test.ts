import { describe, expect, it } from 'vitest';
import { PhiloxStream } from './philox.js';
import { seededShuffle, splitIntoParts } from './shuffle.js';

describe('PhiloxStream', () => {
  it('matches the Random123 known-answer vector for Philox4x32-10 (counter 0, key 0)', () => {
    const rng = new PhiloxStream(0);
    const words = [rng.nextUint32(), rng.nextUint32(), rng.nextUint32(), rng.nextUint32()];
    expect(words.map((w) => w.toString(16).padStart(8, '0'))).toEqual(['6627e8d5', 'e169c58d', 'bc57ac4c', '9b00dbd8']);
  });

  it('draws unbiased integers in range', () => {
    const rng = new PhiloxStream(7);
    const counts = [0, 0, 0];
    for (let i = 0; i < 3000; i++) counts[rng.nextInt(3)]!++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(100);
  });
});

describe('seededShuffle', () => {
  it('is a deterministic permutation', () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    const a = seededShuffle(items, 42);
    expect(a).toEqual(seededShuffle(items, 42));
    expect([...a].sort((x, y) => x - y)).toEqual(items);
    expect(a).not.toEqual(items);
    expect(seededShuffle(items, 43)).not.toEqual(a);
    expect(items).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // input untouched
  });

  it('is pinned: these exact orders are part of the split contract', () => {
    expect(seededShuffle([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 42)).toEqual([4, 8, 1, 6, 0, 9, 2, 5, 7, 3]);
  });
});

describe('splitIntoParts', () => {
  it('gives the first n % parts pieces one extra item, like numpy.array_split', () => {
    expect(splitIntoParts([1, 2, 3, 4, 5, 6, 7], 3)).toEqual([
      [1, 2, 3],
      [4, 5],
      [6, 7],
    ]);
    expect(splitIntoParts([1, 2], 3)).toEqual([[1], [2], []]);
  });

  it('reproduces the study arithmetic: 7,367 articles in 10 parts leave 736 for test', () => {
    const parts = splitIntoParts(
      Array.from({ length: 7367 }, (_, i) => i),
      10,
    );
    expect(parts.map((p) => p.length)).toEqual([737, 737, 737, 737, 737, 737, 737, 736, 736, 736]);
    expect(parts[9]!.length).toBe(736);
    expect(parts.slice(0, 8).flat().length).toBe(5895);
  });
});
