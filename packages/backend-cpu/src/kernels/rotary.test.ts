import type { RotaryParams } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';

describe('rotary', () => {
  it('rotates pairs (i, i + half) by position · base^(−2i/rotaryDim) and passes the tail through', async () => {
    const be = backend();
    // one token, two heads, headDim 6, rotaryDim 4 (half = 2), position 3, scale 2 → t = 1.5
    const p: RotaryParams = { batch: 1, seq: 1, heads: 2, headDim: 6, rotaryDim: 4, base: 100, positionScale: 2 };
    const x = [1, 2, 3, 4, 5, 6, -1, 0.5, 2, -3, 7, 8];
    const out = be.alloc('float32', 12);
    be.rotary(out, upload(be, x), upload(be, [3], 'int32'), p);
    const t = 1.5;
    const theta = [t, t / 10]; // inv_freq = [1, 100^(-1/2)]
    const expected: number[] = [];
    for (let h = 0; h < 2; h++) {
      const v = x.slice(h * 6, h * 6 + 6);
      expected.push(
        v[0] * Math.cos(theta[0]) - v[2] * Math.sin(theta[0]),
        v[1] * Math.cos(theta[1]) - v[3] * Math.sin(theta[1]),
        v[2] * Math.cos(theta[0]) + v[0] * Math.sin(theta[0]),
        v[3] * Math.cos(theta[1]) + v[1] * Math.sin(theta[1]),
        v[4],
        v[5],
      );
    }
    expectClose(await download(be, out), expected, 1e-6);
    be.destroy();
  });

  it('uses each (batch, seq) position; position 0 is the identity; backward inverts the rotation', async () => {
    const be = backend();
    const p: RotaryParams = { batch: 2, seq: 2, heads: 1, headDim: 4, rotaryDim: 4, base: 10000, positionScale: 1 };
    const x = randomValues(16, 31);
    const pos = upload(be, [0, 5, 17, 1000], 'int32');
    const out = be.alloc('float32', 16);
    be.rotary(out, upload(be, x), pos, p);
    const y = await download(be, out);
    expectClose(y.slice(0, 4), x.slice(0, 4), 1e-7);
    // rotation preserves the norm of each (i, i+half) pair
    for (let t = 1; t < 4; t++) {
      for (const i of [0, 1]) {
        const a = Math.hypot(x[t * 4 + i], x[t * 4 + i + 2]);
        const b = Math.hypot(y[t * 4 + i], y[t * 4 + i + 2]);
        expect(Math.abs(a - b)).toBeLessThan(1e-6);
      }
    }
    const back = be.alloc('float32', 16);
    be.rotaryBackward(back, out, pos, p);
    expectClose(await download(be, back), x, 1e-6);
    // backward is the transpose of the forward: matches finite differences of Σ g·rotary(x)
    const g = randomValues(16, 32);
    const forward = async (v: number[]) => {
      be.rotary(out, upload(be, v), pos, p);
      return dot(g, await download(be, out));
    };
    be.rotaryBackward(back, upload(be, g), pos, p);
    expectGradClose(await download(be, back), await numericGrad(x, 1e-2, forward));
    be.destroy();
  });

  it('rejects an odd rotaryDim and positions of the wrong dtype', () => {
    const be = backend();
    const x = be.alloc('float32', 4);
    const p: RotaryParams = { batch: 1, seq: 1, heads: 1, headDim: 4, rotaryDim: 3, base: 10000, positionScale: 1 };
    expect(() => be.rotary(x, x, upload(be, [0], 'int32'), p)).toThrow(/rotary: rotaryDim 3 must be even and at most headDim 4/);
    expect(() => be.rotary(x, x, upload(be, [0]), { ...p, rotaryDim: 4 })).toThrow(/positions has dtype float32 but must be int32/);
    be.destroy();
  });
});
