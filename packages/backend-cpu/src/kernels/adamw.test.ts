import type { AdamWParams } from '@peft/core';
import { describe, expect, it } from 'vitest';
import { backend, download, expectClose, upload } from '../test-helpers.js';

/** One PyTorch AdamW step, written out by hand in double precision. */
function step(p: number[], g: number[], m: number[], v: number[], o: AdamWParams) {
  const P = p.slice();
  const M = m.slice();
  const V = v.slice();
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] * o.gradScale;
    P[i] *= 1 - o.lr * o.weightDecay;
    M[i] = o.beta1 * M[i] + (1 - o.beta1) * gi;
    V[i] = o.beta2 * V[i] + (1 - o.beta2) * gi * gi;
    const mhat = M[i] / (1 - o.beta1 ** o.step);
    const vhat = V[i] / (1 - o.beta2 ** o.step);
    P[i] -= (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
  }
  return { P, M, V };
}

describe('adamw', () => {
  const opts: AdamWParams = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 1, gradScale: 0.5 };

  it('matches a hand-rolled PyTorch step over three steps', async () => {
    const be = backend();
    let p = [1, -2, 0.5, 0];
    let m = [0, 0, 0, 0];
    let v = [0, 0, 0, 0];
    const pb = upload(be, p);
    const mb = be.alloc('float32', 4);
    const vb = be.alloc('float32', 4);
    const grads = [
      [0.1, -0.4, 2, 0],
      [0.3, 0.1, -1, 1e-3],
      [-0.2, 0.2, 0.5, 5],
    ];
    for (let t = 1; t <= 3; t++) {
      const o = { ...opts, step: t };
      be.adamw(pb, upload(be, grads[t - 1]), mb, vb, o);
      ({ P: p, M: m, V: v } = step(p, grads[t - 1], m, v, o));
      expectClose(await download(be, pb), p, 1e-6);
      expectClose(await download(be, mb), m, 1e-6);
      expectClose(await download(be, vb), v, 1e-6);
    }
    be.destroy();
  });

  it('updates a bfloat16 parameter with rounding on store', async () => {
    const be = backend();
    const p = [1, -2];
    const pb = upload(be, p, 'bfloat16');
    const mb = be.alloc('float32', 2);
    const vb = be.alloc('float32', 2);
    const o = { ...opts, lr: 0.25, weightDecay: 0 };
    be.adamw(pb, upload(be, [1, -1], 'bfloat16'), mb, vb, o);
    // step 1: mhat = g·scale, vhat = (g·scale)², so the update is lr·sign(g) (eps negligible)
    expect(await download(be, pb)).toEqual([0.75, -1.75]);
    expect(() => be.adamw(pb, upload(be, [1, 1]), be.alloc('bfloat16', 2), vb, o)).toThrow(
      /adamw: m has dtype bfloat16 but must be float32/,
    );
    expect(() => be.adamw(pb, upload(be, [1, 1]), mb, vb, { ...o, step: 0 })).toThrow(/step must be an integer ≥ 1/);
    be.destroy();
  });
});
