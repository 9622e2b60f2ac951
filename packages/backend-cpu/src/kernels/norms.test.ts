import { describe, expect, it } from 'vitest';
import type { CpuBackend } from '../backend.js';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';

const rows = 3;
const dim = 5;
const eps = 1e-5;

async function layerNormOut(be: CpuBackend, x: number[], w: number[] | null, b: number[] | null): Promise<number[]> {
  const out = be.alloc('float32', rows * dim);
  be.layerNorm(out, be.alloc('float32', rows), be.alloc('float32', rows), upload(be, x), w && upload(be, w), b && upload(be, b), {
    rows,
    dim,
    eps,
  });
  return download(be, out);
}

async function rmsNormOut(be: CpuBackend, x: number[], w: number[] | null): Promise<number[]> {
  const out = be.alloc('float32', rows * dim);
  be.rmsNorm(out, be.alloc('float32', rows), upload(be, x), w && upload(be, w), { rows, dim, eps });
  return download(be, out);
}

describe('layerNorm', () => {
  it('matches hand math on a row, with biased variance', async () => {
    const be = backend();
    const out = be.alloc('float32', 4);
    const mean = be.alloc('float32', 1);
    const rstd = be.alloc('float32', 1);
    // x = [1, 2, 3, 4]: mean 2.5, var 1.25, rstd = 1/√(1.25 + 0.25) with eps 0.25
    be.layerNorm(out, mean, rstd, upload(be, [1, 2, 3, 4]), upload(be, [1, 2, 1, 1]), upload(be, [0, 0, 0, 1]), {
      rows: 1,
      dim: 4,
      eps: 0.25,
    });
    const r = 1 / Math.sqrt(1.5);
    expectClose(await download(be, mean), [2.5]);
    expectClose(await download(be, rstd), [r], 1e-7);
    expectClose(await download(be, out), [-1.5 * r, -0.5 * r * 2, 0.5 * r, 1.5 * r + 1], 1e-6);
    // null weight and bias
    be.layerNorm(out, mean, rstd, upload(be, [1, 2, 3, 4]), null, null, { rows: 1, dim: 4, eps: 0.25 });
    expectClose(await download(be, out), [-1.5 * r, -0.5 * r, 0.5 * r, 1.5 * r], 1e-6);
    be.destroy();
  });

  it('backward matches finite differences for x, weight and bias', async () => {
    const be = backend();
    const x = randomValues(rows * dim, 11, 2);
    const w = randomValues(dim, 12);
    const b = randomValues(dim, 13);
    const gy = randomValues(rows * dim, 14);
    const out = be.alloc('float32', rows * dim);
    const mean = be.alloc('float32', rows);
    const rstd = be.alloc('float32', rows);
    const xb = upload(be, x);
    const wb = upload(be, w);
    be.layerNorm(out, mean, rstd, xb, wb, upload(be, b), { rows, dim, eps });
    const dx = be.alloc('float32', rows * dim);
    const dW = upload(be, [7, 7, 7, 7, 7]); // overwritten, not accumulated
    const dB = be.alloc('float32', dim);
    be.layerNormBackward(dx, dW, dB, upload(be, gy), xb, wb, mean, rstd, { rows, dim, eps });
    const h = 1e-2;
    expectGradClose(await download(be, dx), await numericGrad(x, h, async (v) => dot(gy, await layerNormOut(be, v, w, b))));
    expectGradClose(await download(be, dW), await numericGrad(w, h, async (v) => dot(gy, await layerNormOut(be, x, v, b))));
    expectGradClose(await download(be, dB), await numericGrad(b, h, async (v) => dot(gy, await layerNormOut(be, x, w, v))));
    // without weight: dx of the unweighted norm; dWeight/dBias null are skipped
    be.layerNorm(out, mean, rstd, xb, null, null, { rows, dim, eps });
    be.layerNormBackward(dx, null, null, upload(be, gy), xb, null, mean, rstd, { rows, dim, eps });
    expectGradClose(await download(be, dx), await numericGrad(x, h, async (v) => dot(gy, await layerNormOut(be, v, null, null))));
    be.destroy();
  });

  it('requires float32 statistics', () => {
    const be = backend();
    const x = upload(be, [1, 2]);
    expect(() =>
      be.layerNorm(be.alloc('float32', 2), be.alloc('bfloat16', 1), be.alloc('float32', 1), x, null, null, { rows: 1, dim: 2, eps }),
    ).toThrow(/layerNorm: mean has dtype bfloat16 but must be float32/);
    expect(() =>
      be.layerNorm(be.alloc('float32', 2), be.alloc('float32', 1), be.alloc('float32', 1), x, null, null, { rows: 2, dim: 2, eps }),
    ).toThrow(/layerNorm: out has 2 elements but the parameters need at least 4/);
    be.destroy();
  });
});

describe('rmsNorm', () => {
  it('matches hand math', async () => {
    const be = backend();
    const out = be.alloc('float32', 2);
    const rstd = be.alloc('float32', 1);
    // x = [3, 4]: mean(x²) = 12.5, eps 3.5 → rstd = 1/4
    be.rmsNorm(out, rstd, upload(be, [3, 4]), upload(be, [2, -1]), { rows: 1, dim: 2, eps: 3.5 });
    expect(await download(be, rstd)).toEqual([0.25]);
    expect(await download(be, out)).toEqual([1.5, -1]);
    be.destroy();
  });

  it('backward matches finite differences for x and weight', async () => {
    const be = backend();
    const x = randomValues(rows * dim, 21, 2);
    const w = randomValues(dim, 22);
    const gy = randomValues(rows * dim, 23);
    const out = be.alloc('float32', rows * dim);
    const rstd = be.alloc('float32', rows);
    const xb = upload(be, x);
    const wb = upload(be, w);
    be.rmsNorm(out, rstd, xb, wb, { rows, dim, eps });
    const dx = be.alloc('float32', rows * dim);
    const dW = be.alloc('float32', dim);
    be.rmsNormBackward(dx, dW, upload(be, gy), xb, wb, rstd, { rows, dim, eps });
    const h = 1e-2;
    expectGradClose(await download(be, dx), await numericGrad(x, h, async (v) => dot(gy, await rmsNormOut(be, v, w))));
    expectGradClose(await download(be, dW), await numericGrad(w, h, async (v) => dot(gy, await rmsNormOut(be, x, v))));
    be.destroy();
  });

  it('reads a bfloat16 x and weight and rounds the output', async () => {
    const be = backend();
    const out = be.alloc('bfloat16', 2);
    const rstd = be.alloc('float32', 1);
    be.rmsNorm(out, rstd, upload(be, [3, 4], 'bfloat16'), upload(be, [1 / 3, 1], 'bfloat16'), { rows: 1, dim: 2, eps: 3.5 });
    // 3 · 0.25 · 0.333984375 = 0.25048828125 → bf16 0.25 (0x3e80); 4 · 0.25 = 1 (0x3f80)
    expect(await be.read(out)).toEqual(new Uint16Array([0x3e80, 0x3f80]));
    be.destroy();
  });
});
