import { decode, encode } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';
import { erf } from './activations.js';
import { normalCdf } from './math.js';

/** Max of |got − want| / (|want| + floor) over the elements. */
function worstError(got: ArrayLike<number>, want: ArrayLike<number>, floor: number): { error: number; at: number } {
  let error = 0;
  let at = -1;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]) / (Math.abs(want[i]) + floor);
    if (!(e <= error)) [error, at] = [e, i];
  }
  return { error, at };
}

describe('erf', () => {
  it('matches reference values to ~1e-15', () => {
    const table: [number, number][] = [
      [0, 0],
      [1e-10, 1.1283791670955126e-10],
      [0.1, 0.1124629160182849],
      [0.5, 0.5204998778130465],
      [1, 0.8427007929497149],
      [2, 0.9953222650189527],
      [2.9, 0.9999589021219005],
      [3, 0.9999779095030014],
      [4, 0.9999999845827421],
      [-1.5, -0.9661051464753108],
      [10, 1],
    ];
    for (const [x, want] of table) expect(Math.abs(erf(x) - want), `erf(${x})`).toBeLessThan(2e-15);
    expect(Number.isNaN(erf(Number.NaN))).toBe(true);
    expect(erf(Number.NEGATIVE_INFINITY)).toBe(-1);
  });
});

describe('gelu', () => {
  it('exact and tanh-approximate values', async () => {
    const be = backend();
    const x = upload(be, [-3, -1, 0, 0.5, 1, 2, -10]);
    const out = be.alloc('float32', 7);
    be.gelu(out, x, false);
    // x·Φ(x)
    const exact = [
      -0.004049694193266576, -0.15865525393145707, 0, 0.34573123063700656, 0.8413447460685429, 1.9544997361036416, -7.619853024160526e-23,
    ];
    expectClose(await download(be, out), exact, 1e-7);
    expect((await download(be, out))[6]).toBeCloseTo(-7.619853e-23, 28);
    be.gelu(out, x, true);
    const tanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
    expectClose(await download(be, out), [-3, -1, 0, 0.5, 1, 2, -10].map(tanh), 1e-7);
    expect((await download(be, out))[4]).toBeCloseTo(0.8411919906082768, 7);
    be.destroy();
  });

  for (const approximate of [false, true]) {
    it(`backward matches finite differences (approximate: ${approximate})`, async () => {
      const be = backend();
      const x = [-3.5, -1.2, -0.3, 0, 0.4, 1.1, 2.7];
      const g = randomValues(x.length, 90);
      const out = be.alloc('float32', x.length);
      const forward = async (v: number[]) => {
        be.gelu(out, upload(be, v), approximate);
        return dot(g, await download(be, out));
      };
      const dx = be.alloc('float32', x.length);
      be.geluBackward(dx, upload(be, g), upload(be, x), approximate);
      expectGradClose(await download(be, dx), await numericGrad(x, 1e-3, forward));
      be.destroy();
    });
  }
});

/** The float32 ulp at |v| (subnormal spacing below the normal range). */
function ulp(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

/**
 * Float32 values for the GELU sweeps: every 1999th float32 (by bits) of each sign below 2^4 (so
 * every table cell, its ends and the subnormals, about 1.1M values), the first, middle and last
 * float32 of every table cell (2^−9 ≤ |x| < 4, 128 cells a binade), the neighbours of the tables'
 * ends and of geluBackward's zeros, and the tails out to 100.
 */
function geluSweep(): Float32Array {
  const out: number[] = [];
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  const push = (b: number) => {
    bits[0] = b;
    out.push(f[0]);
  };
  for (const sign of [0, 0x80000000]) {
    for (let b = 0; b < 0x41800000; b += 1999) push((sign | b) >>> 0);
    for (let e = -9; e <= 1; e++)
      for (let c = 0; c < 128; c++) for (const low of [0, 0x8000, 0xffff]) push((sign | ((127 + e) << 23) | (c << 16) | low) >>> 0);
  }
  for (const x of [4, -4, 2 ** -9, -(2 ** -9), -0.7517915, -0.7522]) {
    f[0] = x;
    const at = bits[0];
    for (let k = -200; k <= 200; k++) push(at + k);
  }
  for (let i = 0; i <= 96 * 64; i++) out.push(4 + i / 64, -4 - i / 64);
  return Float32Array.from(out);
}

/** The largest |got − want| in float32 ulps of want, beyond an absolute `floor`, and where. */
function ulpError(xs: Float32Array, got: ArrayLike<number>, want: (x: number) => number, floor = 0): { ulps: number; x: number } {
  let worst = { ulps: 0, x: 0 };
  for (let i = 0; i < xs.length; i++) {
    const w = want(xs[i]);
    const e = Math.max(0, Math.abs(got[i] - w) - floor) / ulp(w);
    if (!(e <= worst.ulps)) worst = { ulps: e, x: xs[i] };
  }
  return worst;
}

describe('activation accuracy against double precision', () => {
  // Every float32 in [-14, 8] on a 1/512 grid, plus the float32 values of random normals.
  const grid = Float32Array.from(
    [...Array.from({ length: 22 * 512 + 1 }, (_, i) => -14 + i / 512), ...randomValues(4096, 7, 4)],
    Math.fround,
  );
  const xs = Array.from(grid);
  const run = async (f: (be: ReturnType<typeof backend>, out: ReturnType<ReturnType<typeof backend>['alloc']>) => void) => {
    const be = backend();
    const out = be.alloc('float32', xs.length);
    f(be, out);
    const values = await download(be, out);
    be.destroy();
    return values;
  };

  describe('gelu and geluBackward: within 1.5 float32 ulp of the double-precision functions on a dense sweep', () => {
    const sweep = geluSweep();
    const C = Math.sqrt(2 / Math.PI);
    const A = 0.044715;
    const phi = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    // σ(2u) and 1 − σ(2u) = σ(−2u), each without cancellation
    const sig = (x: number) => 1 / (1 + Math.exp(-2 * C * (x + A * x ** 3)));
    const sigNeg = (x: number) => 1 / (1 + Math.exp(2 * C * (x + A * x ** 3)));
    const cases: [string, boolean, boolean, (x: number) => number][] = [
      ['gelu exact: x·Φ(x)', false, false, (x) => x * normalCdf(x)],
      ['gelu tanh: x·σ(2u)', false, true, (x) => x * sig(x)],
      ['geluBackward exact: Φ(x) + x·φ(x)', true, false, (x) => normalCdf(x) + x * phi(x)],
      [
        'geluBackward tanh: s + 2x·s·(1 − s)·√(2/π)·(1 + 3·0.044715·x²)',
        true,
        true,
        (x) => sig(x) + 2 * x * sig(x) * sigNeg(x) * C * (1 + 3 * A * x * x),
      ],
    ];
    for (const [name, bwd, tanh, want] of cases) {
      it(name, async () => {
        const be = backend();
        const x = upload(be, sweep);
        const out = be.alloc('float32', sweep.length);
        if (bwd) be.geluBackward(out, upload(be, new Float32Array(sweep.length).fill(1)), x, tanh);
        else be.gelu(out, x, tanh);
        const got = new Float32Array(await download(be, out));
        be.destroy();
        // around geluBackward's zero (x ≈ −0.75) the error is absolute: below 2e-10
        const { ulps, x: at } = ulpError(sweep, got, want, bwd ? 2e-10 : 0);
        expect(ulps, `${name}: worst at x = ${at}`).toBeLessThan(1.5);
      });
    }

    it('limits: gelu(x) = x and geluBackward = dy for large x; −0 and 0 for very negative x; ±∞ give them too', async () => {
      const be = backend();
      const big = [6.5, 7, 10, 100, 1e10, 3.4e38, Number.POSITIVE_INFINITY];
      const small = [-15, -20, -100, -1e10, -3.4e38, Number.NEGATIVE_INFINITY];
      const xs = [...big, ...small];
      const dy = xs.map((_, i) => (i % 2 ? -1.5 : 2.25));
      for (const tanh of [false, true]) {
        const out = be.alloc('float32', xs.length);
        be.gelu(out, upload(be, xs), tanh);
        const y = await download(be, out);
        be.geluBackward(out, upload(be, dy), upload(be, xs), tanh);
        const dx = await download(be, out);
        for (let i = 0; i < xs.length; i++) {
          const what = `tanh ${tanh}, x = ${xs[i]}`;
          if (i < big.length) {
            expect(y[i], what).toBe(Math.fround(xs[i]));
            expect(dx[i], what).toBe(dy[i]);
          } else {
            expect(Object.is(y[i], -0), `${what}: gelu ${y[i]}`).toBe(true);
            expect(Math.abs(dx[i]), what).toBe(0);
          }
        }
        const nan = be.alloc('float32', 1);
        be.gelu(nan, upload(be, [Number.NaN]), tanh);
        expect((await download(be, nan))[0]).toBeNaN();
        be.geluBackward(nan, upload(be, [1]), upload(be, [Number.NaN]), tanh);
        expect((await download(be, nan))[0]).toBeNaN();
      }
      be.destroy();
    });

    it('signed zeros and subnormals: gelu(±0) = ±0, gelu(x) = x/2 to the last bit for tiny x', async () => {
      const be = backend();
      const xs = [0, -0, 1e-45, -1e-45, 1e-40, -3e-39, 1e-30, -1e-20];
      for (const tanh of [false, true]) {
        const out = be.alloc('float32', xs.length);
        be.gelu(out, upload(be, xs), tanh);
        const y = await download(be, out);
        expect(Object.is(y[0], 0) && Object.is(y[1], -0), `tanh ${tanh}`).toBe(true);
        for (let i = 2; i < xs.length; i++) expect(y[i], `tanh ${tanh}, x = ${xs[i]}`).toBe(Math.fround(Math.fround(xs[i]) / 2));
        be.geluBackward(
          out,
          upload(
            be,
            xs.map(() => 1),
          ),
          upload(be, xs),
          tanh,
        );
        for (const d of await download(be, out)) expect(d).toBe(0.5);
      }
      be.destroy();
    });
  });

  it('siluMul is within one float32 ulp of x·sigmoid(x)·up', async () => {
    const got = await run((be, out) =>
      be.siluMul(
        out,
        upload(be, xs),
        upload(
          be,
          xs.map(() => 1),
        ),
      ),
    );
    const { error, at } = worstError(
      got,
      xs.map((x) => x / (1 + Math.exp(-x))),
      1e-45 / 1.2e-7,
    );
    expect(error, `x = ${xs[at]}`).toBeLessThan(1.2e-7);
  });

  it('16-bit storage goes through float32 chunk by chunk: bfloat16 results are the float32 ones rounded, in place too', async () => {
    const be = backend();
    const n = 3 * 4096 + 77; // several chunks and a ragged end
    const values = Array.from(decode(encode(randomValues(n, 11, 6), 'bfloat16'), 'bfloat16'));
    const up = Array.from(decode(encode(randomValues(n, 12, 2), 'bfloat16'), 'bfloat16'));
    const cases: [string, (out: ReturnType<typeof be.alloc>, x: ReturnType<typeof be.alloc>, y: ReturnType<typeof be.alloc>) => void][] = [
      ['gelu exact', (out, x) => be.gelu(out, x, false)],
      ['gelu tanh', (out, x) => be.gelu(out, x, true)],
      ['geluBackward exact', (out, x, y) => be.geluBackward(out, y, x, false)],
      ['geluBackward tanh', (out, x, y) => be.geluBackward(out, y, x, true)],
      ['siluMul', (out, x, y) => be.siluMul(out, x, y)],
    ];
    for (const [name, call] of cases) {
      const o32 = be.alloc('float32', n);
      call(o32, upload(be, values), upload(be, up));
      const want = encode(await download(be, o32), 'bfloat16');
      const o16 = be.alloc('bfloat16', n);
      call(o16, upload(be, values, 'bfloat16'), upload(be, up, 'bfloat16'));
      expect(await be.read(o16), name).toEqual(want);
      const inPlace = upload(be, values, 'bfloat16');
      call(inPlace, inPlace, upload(be, up, 'bfloat16'));
      expect(await be.read(inPlace), `${name} in place`).toEqual(want);
    }
    // siluMulBackward writing over its own inputs (dGate = gate, dUp = up).
    const [g, gate, upv] = [randomValues(n, 13), values, up];
    const d32 = [be.alloc('float32', n), be.alloc('float32', n)];
    be.siluMulBackward(d32[0], d32[1], upload(be, g), upload(be, gate), upload(be, upv));
    const gate16 = upload(be, gate, 'bfloat16');
    const up16 = upload(be, upv, 'bfloat16');
    be.siluMulBackward(gate16, up16, upload(be, g, 'bfloat16'), gate16, up16);
    const g16 = Array.from(decode(encode(g, 'bfloat16'), 'bfloat16'));
    const ref = [be.alloc('float32', n), be.alloc('float32', n)];
    be.siluMulBackward(ref[0], ref[1], upload(be, g16), upload(be, gate), upload(be, upv));
    expect(await be.read(gate16)).toEqual(encode(await download(be, ref[0]), 'bfloat16'));
    expect(await be.read(up16)).toEqual(encode(await download(be, ref[1]), 'bfloat16'));
    be.destroy();
  });
});

describe('siluMul', () => {
  it('computes silu(gate)·up and its backward', async () => {
    const be = backend();
    const gate = [-2, -0.5, 0, 1, 3];
    const up = [1.5, -2, 4, 0.5, -1];
    const out = be.alloc('float32', 5);
    be.siluMul(out, upload(be, gate), upload(be, up));
    const silu = (v: number) => v / (1 + Math.exp(-v));
    expectClose(
      await download(be, out),
      gate.map((v, i) => silu(v) * up[i]),
      1e-6,
    );

    const g = randomValues(5, 91);
    const dGate = be.alloc('float32', 5);
    const dUp = be.alloc('float32', 5);
    be.siluMulBackward(dGate, dUp, upload(be, g), upload(be, gate), upload(be, up));
    const loss = async (gv: number[], uv: number[]) => {
      be.siluMul(out, upload(be, gv), upload(be, uv));
      return dot(g, await download(be, out));
    };
    expectGradClose(await download(be, dGate), await numericGrad(gate, 1e-3, (v) => loss(v, up)));
    expectGradClose(await download(be, dUp), await numericGrad(up, 1e-3, (v) => loss(gate, v)));
    be.destroy();
  });
});
