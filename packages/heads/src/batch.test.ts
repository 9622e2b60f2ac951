import { describe, expect, it } from 'vitest';
import { lastTokenIndex } from './batch.js';

describe('lastTokenIndex (Study A pooling position)', () => {
  it('is sum(mask) − 1 under right padding and the last position under left padding', () => {
    const right = [
      [1, 1, 1, 0, 0],
      [1, 1, 1, 1, 1],
      [1, 0, 0, 0, 0],
    ];
    expect(lastTokenIndex(right, 3, 5)).toEqual([2, 4, 0]);
    expect(right.map((r) => r.reduce((a, b) => a + b) - 1)).toEqual([2, 4, 0]);
    const left = [
      [0, 0, 1, 1, 1],
      [1, 1, 1, 1, 1],
      [0, 0, 0, 0, 1],
    ];
    expect(lastTokenIndex(left, 3, 5)).toEqual([4, 4, 4]);
    expect(lastTokenIndex(null, 2, 7)).toEqual([6, 6]);
  });

  it('refuses masks that are neither left- nor right-padded, and rows without a real token', () => {
    expect(() => lastTokenIndex([[0, 1, 1, 0]], 1, 4)).toThrow('attentionMask row 0 [0, 1, 1, 0] is neither left- nor right-padded');
    expect(() =>
      lastTokenIndex(
        [
          [1, 1],
          [0, 0],
        ],
        2,
        2,
      ),
    ).toThrow('attentionMask row 1 has no real token (all 2 positions are 0)');
  });
});
