import { type DeviceBuffer, type DType, decode, encode } from '@peft/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CpuBackend, createCpuBackend } from '../backend.js';
import { backend, dot, download, expectClose, expectGradClose, numericGrad, randomValues, upload } from '../test-helpers.js';
import { setNormsWasm } from './norms-wasm.js';

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

/** A norm call's outputs, read back as raw bits (float32, or 16-bit patterns) for exact comparisons. */
type Outs = Record<string, ArrayLike<number>>;

interface NormCase {
  rows: number;
  dim: number;
  weight: boolean;
  bias: boolean;
  /** dWeight (and, for layerNorm, dBias) requested from the backward passes. */
  grads: boolean;
  /** Per-row mean of x: large against its spread to test cancellation. */
  offset?: number;
  /** Storage of x, dy, weight, bias and the outputs (float32 when omitted). */
  dtype?: DType;
  /** Inputs rounded to this dtype's values first (float32 when omitted). */
  round?: DType;
}

/** The inputs of a case as numbers (already rounded to what their buffers hold). */
function inputs(c: NormCase): { x: number[]; gy: number[]; w: number[] | null; b: number[] | null } {
  const exact = (v: number[]) => Array.from(decode(encode(v, c.round ?? 'float32'), c.round ?? 'float32'));
  const spread = c.offset === undefined ? 2 : 4;
  return {
    x: exact(randomValues(c.rows * c.dim, 31, spread).map((v) => v + (c.offset ?? 0))),
    gy: exact(randomValues(c.rows * c.dim, 32)),
    w: c.weight ? exact(randomValues(c.dim, 33, 1.5)) : null,
    b: c.bias ? exact(randomValues(c.dim, 34)) : null,
  };
}

/** layerNorm, layerNormBackward, rmsNorm and rmsNormBackward on one backend; every output read back. */
async function runNorms(be: CpuBackend, c: NormCase): Promise<Outs> {
  const { rows: R, dim: D } = c;
  const dtype = c.dtype ?? 'float32';
  const v = inputs(c);
  const xb = upload(be, v.x, dtype);
  const gy = upload(be, v.gy, dtype);
  const w = v.w && upload(be, v.w, dtype);
  const b = v.b && upload(be, v.b, dtype);
  const p = { rows: R, dim: D, eps };
  const stat = () => be.alloc('float32', R);
  const big = () => be.alloc(dtype, R * D);
  const grad = () => (c.grads ? be.alloc('float32', D) : null);
  const [y, mean, rstd, dx, dW, dB] = [big(), stat(), stat(), big(), grad(), grad()];
  be.layerNorm(y, mean, rstd, xb, w, b, p);
  be.layerNormBackward(dx, dW, dB, gy, xb, w, mean, rstd, p);
  const [ry, rr, rdx, rdW] = [big(), stat(), big(), grad()];
  be.rmsNorm(ry, rr, xb, w, p);
  be.rmsNormBackward(rdx, rdW, gy, xb, w, rr, p);
  const bufs: Record<string, DeviceBuffer | null> = { y, mean, rstd, dx, dW, dB, ry, rr, rdx, rdW };
  const outs: Outs = {};
  for (const [k, v] of Object.entries(bufs)) if (v !== null) outs[k] = await be.read(v);
  return outs;
}

/** Exact equality of two outputs, bit for bit (a quick loop: deep equality of large arrays is slow). */
function expectSameBits(got: ArrayLike<number> | undefined, want: ArrayLike<number> | undefined, name: string): void {
  expect(got?.length, name).toBe(want?.length);
  const g = new Uint32Array(Float32Array.from(got ?? []).buffer);
  const w = new Uint32Array(Float32Array.from(want ?? []).buffer);
  let bad = -1;
  for (let i = 0; i < w.length && bad < 0; i++) if (g[i] !== w[i]) bad = i;
  expect(bad < 0 ? 'same' : `element ${bad}: ${got![bad]} vs ${want![bad]}`, name).toBe('same');
}

/** float64 reference of the four kernels from the same float32 inputs (x̂ from the kernel's own saved mean / rstd). */
function reference(o: Outs, c: NormCase): Record<string, number[]> {
  const { rows: R, dim: D } = c;
  const v = inputs(c);
  const [x, gy] = [v.x, v.gy];
  const w = v.w ?? new Array<number>(D).fill(1);
  const b = v.b ?? new Array<number>(D).fill(0);
  const ref: Record<string, number[]> = { mean: [], rstd: [], y: [], dx: [], dW: new Array(D).fill(0), dB: new Array(D).fill(0) };
  Object.assign(ref, { rr: [], ry: [], rdx: [], rdW: new Array(D).fill(0) });
  for (let r = 0; r < R; r++) {
    const row = x.slice(r * D, (r + 1) * D);
    const g = gy.slice(r * D, (r + 1) * D);
    const mu = row.reduce((a, v) => a + v, 0) / D;
    ref.mean!.push(mu);
    ref.rstd!.push(1 / Math.sqrt(row.reduce((a, v) => a + (v - mu) ** 2, 0) / D + eps));
    ref.rr!.push(1 / Math.sqrt(row.reduce((a, v) => a + v * v, 0) / D + eps));
    const [m, s, rs] = [o.mean![r]!, o.rstd![r]!, o.rr![r]!];
    const xh = row.map((v) => (v - m) * s);
    const gw = g.map((v, j) => v * w[j]!);
    const mg = gw.reduce((a, v) => a + v, 0) / D;
    const mgx = gw.reduce((a, v, j) => a + v * xh[j]!, 0) / D;
    const rxh = row.map((v) => v * rs);
    const rmgx = gw.reduce((a, v, j) => a + v * rxh[j]!, 0) / D;
    for (let j = 0; j < D; j++) {
      ref.y!.push(xh[j]! * w[j]! + b[j]!);
      ref.dx!.push(s * (gw[j]! - mg - xh[j]! * mgx));
      ref.dW![j]! += g[j]! * xh[j]!;
      ref.dB![j]! += g[j]!;
      ref.ry!.push(rxh[j]! * w[j]!);
      ref.rdx!.push(rs * (gw[j]! - rxh[j]! * rmgx));
      ref.rdW![j]! += g[j]! * rxh[j]!;
    }
  }
  return ref;
}

// The JavaScript rows, on one thread and split across two (float32 calls would run the
// WebAssembly kernels on the calling thread: norms-wasm.test.ts checks they give these bits).
describe('norm row kernels', () => {
  const one = createCpuBackend({ threads: 1 });
  const two = createCpuBackend({ threads: 2 });
  let wasWasm = true;
  beforeAll(() => {
    wasWasm = setNormsWasm(false);
  });
  afterAll(() => {
    setNormsWasm(wasWasm);
    one.destroy();
    two.destroy();
  });

  // 203 rows: not a multiple of a task (forRows cuts 26-row tasks at 2 threads) nor of a 32-row
  // block of the column sums; dim 517: not a multiple of the unrolled steps (4 and 8).
  const big = { rows: 203, dim: 517 };
  const cases: NormCase[] = [
    { ...big, weight: true, bias: true, grads: false },
    { ...big, weight: true, bias: true, grads: true },
    { ...big, weight: false, bias: false, grads: true },
    { ...big, weight: true, bias: false, grads: false },
    { rows: 1000, dim: 96, weight: true, bias: true, grads: true },
    { rows: 9, dim: 8192, weight: true, bias: true, grads: true },
  ];

  it('give the same bits on 2 threads as on 1, and the workers take tasks', async () => {
    expect(big.rows * big.dim).toBeGreaterThan(64 * 1024); // above the parallel threshold
    const pool = two.pool!;
    const before = pool.workerTasks;
    for (const c of cases) {
      const want = await runNorms(one, c);
      const got = await runNorms(two, c);
      for (const k of Object.keys(want)) expectSameBits(got[k], want[k], `${JSON.stringify(c)} ${k}`);
    }
    // In all (a worker still starting may leave a single call's tasks to the calling thread).
    expect(pool.workerTasks).toBeGreaterThan(before);
  });

  it('match a float64 reference on rows wider than the unrolled steps', async () => {
    for (const c of cases.slice(0, 4)) {
      const got = await runNorms(two, c);
      const ref = reference(got, c);
      for (const k of Object.keys(ref)) {
        if (!(k in got)) continue;
        const tol = k === 'dW' || k === 'dB' || k === 'rdW' ? 1e-5 : 2e-6;
        expectClose(Array.from(got[k]!), ref[k]!, tol);
      }
    }
  });

  it('keep the statistics exact when |mean| is much larger than the spread', async () => {
    // x = 3·10⁷ ± a few units (the float32 spacing there is 2): E[x²] − E[x]² in one pass would
    // lose every digit of the variance; sums of (x − x₀) keep all of them.
    const c: NormCase = { rows: 130, dim: 600, weight: true, bias: true, grads: true, offset: 3e7 };
    const got = await runNorms(two, c);
    const ref = reference(got, c);
    expectClose(Array.from(got.rstd!), ref.rstd!, 1e-6);
    expectClose(Array.from(got.mean!), ref.mean!, 1e-7);
    expectClose(Array.from(got.y!), ref.y!, 1e-5);
    const once = await runNorms(one, c);
    for (const k of Object.keys(got)) expectSameBits(once[k], got[k], k);
  });

  it('read and write float16 and bfloat16 through scratch: the float32 results rounded, the same dWeight / dBias', async () => {
    // 333 rows of 100: three chunks of 160 rows (whole column-sum blocks), the last one short.
    for (const dtype of ['bfloat16', 'float16'] as const) {
      for (const weight of [true, false]) {
        const c: NormCase = { rows: 333, dim: 100, weight, bias: weight, grads: true, dtype, round: dtype };
        const got = await runNorms(two, c);
        const want = await runNorms(one, { ...c, dtype: 'float32' });
        for (const k of ['y', 'dx', 'ry', 'rdx']) expectSameBits(got[k], encode(Array.from(want[k]!), dtype), `${dtype} ${k}`);
        for (const k of ['mean', 'rstd', 'dW', 'dB', 'rr', 'rdW']) expectSameBits(got[k], want[k], `${dtype} ${k}`);
      }
    }
  });
});
