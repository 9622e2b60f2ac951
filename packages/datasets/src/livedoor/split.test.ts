import { describe, expect, it } from 'vitest';
import { splitLivedoor } from './split.js';

describe('splitLivedoor', () => {
  const items = Array.from({ length: 7367 }, (_, i) => i);

  it('cuts 7,367 articles into 5,895 / 736 / 736 like the study', () => {
    const s = splitLivedoor(items, { seed: 42 });
    expect([s.train.length, s.validation.length, s.test.length]).toEqual([5895, 736, 736]);
    expect(new Set([...s.train, ...s.validation, ...s.test]).size).toBe(7367);
  });

  it('is deterministic for a seed and different across seeds', () => {
    const a = splitLivedoor(items, { seed: 42 });
    expect(splitLivedoor(items, { seed: 42 })).toEqual(a);
    expect(splitLivedoor(items, { seed: 1 }).test).not.toEqual(a.test);
  });

  it('keeps near-equal parts for small inputs', () => {
    const s = splitLivedoor(
      Array.from({ length: 23 }, (_, i) => i),
      { seed: 0, parts: 10 },
    );
    expect([s.train.length, s.validation.length, s.test.length]).toEqual([19, 2, 2]);
    const ten = splitLivedoor(
      Array.from({ length: 10 }, (_, i) => i),
      { seed: 3 },
    );
    expect([ten.train.length, ten.validation.length, ten.test.length]).toEqual([8, 1, 1]);
  });
});
