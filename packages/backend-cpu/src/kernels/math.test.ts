import { describe, expect, it } from 'vitest';
import { erf } from './activations.js';
import { ERF_POLY_MAX, erfcScaled, erfPoly, fastErf, fastErfc, fastExp } from './math.js';

/** erfc in double precision for x ≥ 0: 1 − erf where that keeps its digits, else the same continued fraction erf uses. */
function erfcRef(x: number): number {
  if (x < 0.5) return 1 - erf(x);
  // e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
  let f = x;
  for (let n = 400; n >= 1; n--) f = x + n / 2 / f;
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

describe('fastExp', () => {
  it('is within 2e-12 of Math.exp (relative) over the double range, and exact at 0', () => {
    let worst = 0;
    for (let i = -708_000; i <= 708_000; i += 7) {
      const x = i / 1000 + 1e-4;
      worst = Math.max(worst, Math.abs(fastExp(x) / Math.exp(x) - 1));
    }
    expect(worst).toBeLessThan(2e-12);
    expect(fastExp(0)).toBe(1);
    expect(fastExp(-1000)).toBe(0);
    expect(fastExp(1000)).toBe(Number.POSITIVE_INFINITY);
    expect(fastExp(Number.NEGATIVE_INFINITY)).toBe(0);
    expect(fastExp(Number.NaN)).toBeNaN();
  });
});

describe('fast erf and erfc', () => {
  it('fastErf is within 2e-11 of the double-precision erf on a dense grid over [-10, 10]', () => {
    let worst = 0;
    let at = 0;
    for (let i = -2_000_000; i <= 2_000_000; i++) {
      const x = i / 200_000;
      const e = Math.abs(fastErf(x) - erf(x));
      if (e > worst) [worst, at] = [e, x];
    }
    expect(worst, `max |fastErf − erf| at x = ${at}`).toBeLessThan(2e-11);
    expect(fastErf(Number.POSITIVE_INFINITY)).toBe(1);
    expect(fastErf(Number.NEGATIVE_INFINITY)).toBe(-1);
    expect(fastErf(Number.NaN)).toBeNaN();
  });

  it('erfPoly keeps its relative accuracy down to 0 (3e-10)', () => {
    let worst = 0;
    for (let i = 1; i <= 220_000; i++) {
      const z = (i / 100_000) * (i % 2 ? 1 : -1);
      if (Math.abs(z) > ERF_POLY_MAX) continue;
      worst = Math.max(worst, Math.abs(erfPoly(z) / erf(z) - 1));
    }
    expect(worst).toBeLessThan(3e-10);
    expect(erfPoly(1e-30) / 1e-30).toBeCloseTo(2 / Math.sqrt(Math.PI), 9);
  });

  it('fastErfc keeps its relative accuracy into the tail (1.7e-9 up to x = 26)', () => {
    let worst = 0;
    let at = 0;
    for (let i = 0; i <= 260_000; i++) {
      const x = i / 10_000;
      const e = Math.abs(fastErfc(x) / erfcRef(x) - 1);
      if (e > worst) [worst, at] = [e, x];
    }
    expect(worst, `max relative error at x = ${at}`).toBeLessThan(1.7e-9);
    expect(Math.abs(fastErfc(-1.5) - (1 + erf(1.5)))).toBeLessThan(4e-9);
    expect(erfcScaled(0)).toBeCloseTo(1, 8);
    expect(fastErfc(Number.POSITIVE_INFINITY)).toBe(0);
  });
});
