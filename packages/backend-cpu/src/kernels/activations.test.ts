import { decode, encode } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';
import { erf } from './activations.js';

/** Φ(x) in double precision, with relative accuracy in the negative tail (erfc by its continued fraction). */
function cdf(x: number): number {
  const z = Math.abs(x) * Math.SQRT1_2;
  if (z < 0.5) return 0.5 * (1 + erf(x * Math.SQRT1_2));
  let f = z;
  for (let n = 400; n >= 1; n--) f = z + n / 2 / f;
  const erfc = Math.exp(-z * z) / (Math.sqrt(Math.PI) * f);
  return x < 0 ? 0.5 * erfc : 1 - 0.5 * erfc;
}

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
  const C = Math.sqrt(2 / Math.PI);

  it('gelu (exact) is within one float32 ulp of x·Φ(x), far into the negative tail', async () => {
    const got = await run((be, out) => be.gelu(out, upload(be, xs), false));
    const want = xs.map((x) => x * cdf(x));
    // 1.2e-7 relative is one float32 ulp at most; 1e-45 covers float32 subnormals (x < −13).
    const { error, at } = worstError(got, want, 1e-45 / 1.2e-7);
    expect(error, `x = ${xs[at]}: ${got[at]} vs ${want[at]}`).toBeLessThan(1.2e-7);
  });

  it('geluBackward (exact) is within one float32 ulp of Φ(x) + x·φ(x) (1e-9 absolute near its zero)', async () => {
    const got = await run((be, out) =>
      be.geluBackward(
        out,
        upload(
          be,
          xs.map(() => 1),
        ),
        upload(be, xs),
        false,
      ),
    );
    const want = xs.map((x) => cdf(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI));
    const { error, at } = worstError(got, want, 1e-9 / 1.2e-7);
    expect(error, `x = ${xs[at]}: ${got[at]} vs ${want[at]}`).toBeLessThan(1.2e-7);
  });

  it('gelu (tanh) and its backward are within one float32 ulp of the double-precision formulas', async () => {
    const sig = (u: number) => 1 / (1 + Math.exp(-u));
    const u = (x: number) => C * (x + 0.044715 * x ** 3);
    const fwd = await run((be, out) => be.gelu(out, upload(be, xs), true));
    const f = worstError(
      fwd,
      xs.map((x) => x * sig(2 * u(x))),
      1e-45 / 1.2e-7,
    );
    expect(f.error, `x = ${xs[f.at]}`).toBeLessThan(1.2e-7);
    const bwd = await run((be, out) =>
      be.geluBackward(
        out,
        upload(
          be,
          xs.map(() => 1),
        ),
        upload(be, xs),
        true,
      ),
    );
    const want = xs.map((x) => {
      const t = Math.tanh(u(x));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * 0.044715 * x * x);
    });
    const b = worstError(bwd, want, 1e-9 / 1.2e-7);
    expect(b.error, `x = ${xs[b.at]}: ${bwd[b.at]} vs ${want[b.at]}`).toBeLessThan(1.2e-7);
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
