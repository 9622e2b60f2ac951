import { describe, expect, it } from 'vitest';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';
import { erf } from './activations.js';

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
