import { describe, expect, it } from 'vitest';
import { assertClose, assertEqual, formatIndex } from './assert.js';
import { finiteDifference } from './gradcheck.js';

describe('assertClose', () => {
  it('passes within atol + rtol·|expected|', () => {
    expect(() => assertClose([1.001, -2], [1, -2.01], { atol: 1e-3, rtol: 5e-3, what: 'x' })).not.toThrow();
    expect(() => assertClose(Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY, { atol: 0, rtol: 0, what: 'lse' })).not.toThrow();
    expect(() => assertClose([Number.NaN], [Number.NaN], { atol: 0, rtol: 0, what: 'nan' })).not.toThrow();
  });

  it('names the worst element, both values and the tolerance', () => {
    expect(() =>
      assertClose([1, 2.5, 3.1], [1, 2, 3], { atol: 0.01, rtol: 0, what: 'matmul [float32] "m=1": out', shape: [1, 3] }),
    ).toThrow(
      'matmul [float32] "m=1": out: 2 of 3 elements outside tolerance (atol 0.01, rtol 0)\n' +
        '  worst at index 1 = [0,1]: expected 2, actual 2.5, |diff| 0.5 > 0.01 = atol + rtol·|expected|',
    );
  });

  it('fails on infinities, NaN and lengths that do not match, skips elements the spec leaves open', () => {
    expect(() => assertClose([Number.POSITIVE_INFINITY], [1], { atol: 1, rtol: 1, what: 'x' })).toThrow(/1 of 1/);
    expect(() => assertClose([0], [Number.NEGATIVE_INFINITY], { atol: 1, rtol: 1, what: 'x' })).toThrow(/expected -Infinity, actual 0/);
    expect(() => assertClose([Number.NaN], [0], { atol: 1, rtol: 1, what: 'x' })).toThrow(/actual NaN/);
    expect(() => assertClose([1, 2], [1], { atol: 1, rtol: 1, what: 'x' })).toThrow(/length mismatch/);
    expect(() => assertClose([1, 99], [1, 2], { atol: 0, rtol: 0, what: 'x', care: (i) => i === 0 })).not.toThrow();
  });

  it('assertEqual and formatIndex', () => {
    expect(() => assertEqual([1, 2], [1, 3], 'argmax')).toThrow('argmax: 1 of 2 elements differ; first at index 1: expected 3, actual 2');
    expect(formatIndex(7, [2, 2, 3])).toBe('7 = [1,0,1]');
  });
});

describe('finiteDifference', () => {
  it('differentiates f(x) = Σ x³ + x0·x1', () => {
    const x = [0.5, -1.5, 2];
    const f = (z: Float64Array) => z.reduce((a, v) => a + v ** 3, 0) + z[0]! * z[1]!;
    const expected = [3 * 0.25 + -1.5, 3 * 2.25 + 0.5, 3 * 4];
    // Central differences: error eps² · f‴ / 6 = 1e-8.
    assertClose(finiteDifference(f, x, 1e-4), expected, { atol: 1e-7, rtol: 0, what: 'gradient' });
  });

  it('only perturbs the requested indices and leaves x unchanged', () => {
    const x = new Float64Array([1, 2, 3]);
    const g = finiteDifference((z) => z[0]! * 10 + z[2]! ** 2, x, 1e-3, [2]);
    expect(g[0]).toBe(0);
    expect(g[2]).toBeCloseTo(6, 9);
    expect([...x]).toEqual([1, 2, 3]);
  });
});
