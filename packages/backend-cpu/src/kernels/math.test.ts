import { describe, expect, it } from 'vitest';
import { erf } from './activations.js';
import {
  ERF_POLY_MAX,
  erfcScaled,
  erfPoly,
  fastErf,
  fastErfc,
  fastExp,
  GELU_X_MAX,
  GELU_X_MIN,
  geluTables,
  geluTableValue,
  normalCdf,
} from './math.js';

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

describe('normalCdf', () => {
  it('matches reference values to 1e-13 relative, far into the negative tail', () => {
    // mpmath.ncdf at 40 digits
    const table: [number, number][] = [
      [0, 0.5],
      [0.5, 0.6914624612740131],
      [2, 0.9772498680518208],
      [-0.5, 0.3085375387259869],
      [-1, 0.15865525393145705],
      [-2.8, 0.0025551303304279342],
      [-3, 0.0013498980316300946],
      [-5, 2.866515718791939e-7],
      [-10, 7.619853024160525e-24],
      [-20, 2.7536241186062337e-89],
    ];
    for (const [x, want] of table) expect(Math.abs(normalCdf(x) / want - 1), `Φ(${x})`).toBeLessThan(1e-13);
    expect(normalCdf(40)).toBe(1);
  });
});

describe('GELU tables', () => {
  const C = Math.sqrt(2 / Math.PI);
  const A = 0.044715;
  const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
  const sig = (x: number) => 1 / (1 + Math.exp(-2 * C * (x + A * x ** 3)));
  const sigNeg = (x: number) => 1 / (1 + Math.exp(2 * C * (x + A * x ** 3)));
  const fns: [string, (x: number) => number][] = [
    ['gelu exact', (x) => x * normalCdf(x)],
    ['gelu tanh', (x) => x * sig(x)],
    ['geluBackward exact', (x) => normalCdf(x) + x * phi(x)],
    ['geluBackward tanh', (x) => sig(x) + 2 * x * sig(x) * sigNeg(x) * C * (1 + 3 * A * x * x)],
  ];
  const ulp = (v: number) => {
    const a = Math.abs(v);
    return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
  };

  it('cover (−4, 4): each value within 1.5 float32 ulp of the function (2e-10 absolute around geluBackward’s zero)', () => {
    expect([GELU_X_MIN, GELU_X_MAX]).toEqual([-4, 4]);
    const t = geluTables();
    const f = new Float32Array(1);
    const bits = new Uint32Array(f.buffer);
    for (let fn = 0; fn < 4; fn++) {
      const [name, want] = fns[fn];
      let worst = 0;
      let at = 0;
      for (const sign of [0, 0x80000000]) {
        for (let b = 0; b < 0x40800000; b += 4001) {
          bits[0] = (sign | b) >>> 0;
          const x = f[0];
          const w = want(x);
          const e = Math.max(0, Math.abs(geluTableValue(t, fn >> 1, fn & 1, x) - w) - (fn >> 1 ? 2e-10 : 0)) / ulp(w);
          if (e > worst) [worst, at] = [e, x];
        }
      }
      expect(worst, `${name}: worst at x = ${at}`).toBeLessThan(1.5);
    }
  });
});
