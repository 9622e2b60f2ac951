import type { DeviceBuffer } from '@peft/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type CpuBackend, createCpuBackend } from '../backend.js';
import { randomValues, upload } from '../test-helpers.js';
import { CHUNK_ELEMENTS, normsWasm, setNormsWasm } from './norms-wasm.js';

const eps = 1e-5;

/** Inputs of one case; `special` puts NaN / ±Infinity into x and dy of a few rows. */
interface Case {
  rows: number;
  dim: number;
  weight: boolean;
  bias: boolean;
  dW: boolean;
  dB: boolean;
  offset?: number;
  special?: boolean;
  /**
   * A pair of dy = ±2⁴⁰ (with equal x) in each row: the float64 sums cancel them and keep what
   * their order let the small terms keep, so a sum taken in another order shows in the results.
   */
  spikes?: boolean;
  /** dx written into dy's or x's buffer (and y into x's), in place. */
  inPlace?: 'dy' | 'x';
}

function values(c: Case): { x: Float32Array; gy: Float32Array; w: Float32Array | null; b: Float32Array | null } {
  const x = Float32Array.from(randomValues(c.rows * c.dim, 41 + c.dim, c.offset === undefined ? 2 : 4), (v) => v + (c.offset ?? 0));
  const gy = Float32Array.from(randomValues(c.rows * c.dim, 42 + c.dim));
  if (c.special) {
    const at = (r: number, j: number) => Math.min(r, c.rows - 1) * c.dim + (j % c.dim);
    x[at(1, 2)] = Number.NaN;
    x[at(3, 0)] = Number.POSITIVE_INFINITY;
    gy[at(5, 1)] = Number.NEGATIVE_INFINITY;
    gy[at(6, 3)] = Number.NaN;
    x[at(7, 4)] = 3e38; // squares beyond float32's range: the float64 sums keep them finite
  }
  if (c.spikes) {
    // Rows r and r + 24 have the same x and opposite spikes in the same columns, so the column sums
    // of dWeight / dBias cancel them too, mostly across a 32-row block boundary.
    const D = c.dim;
    for (let r = 0; r < c.rows && D > 2; r++) {
      if (r >= 24) x.copyWithin(r * D, (r % 24) * D, (r % 24) * D + D);
      const j1 = (5 * (r % 24)) % D;
      const j2 = (j1 + 2) % D;
      const sign = Math.floor(r / 24) % 2 === 0 ? 1 : -1;
      gy[r * D + j1] = sign * 2 ** 40;
      gy[r * D + j2] = -sign * 2 ** 40;
      x[r * D + j2] = x[r * D + j1]!;
    }
  }
  return {
    x,
    gy,
    w: c.weight ? Float32Array.from(randomValues(c.dim, 43, 1.5)) : null,
    b: c.bias ? Float32Array.from(randomValues(c.dim, 44)) : null,
  };
}

/** The four kernels on `be` with the wasm kernels on or off; every output as float32 bits. */
async function run(be: CpuBackend, c: Case, wasm: boolean): Promise<Record<string, Float32Array>> {
  const was = setNormsWasm(wasm);
  try {
    const { rows: R, dim: D } = c;
    const v = values(c);
    const p = { rows: R, dim: D, eps };
    const w = v.w && upload(be, v.w);
    const b = v.b && upload(be, v.b);
    const stat = () => be.alloc('float32', R);
    const grad = (on: boolean) => (on ? be.alloc('float32', D) : null);
    const out: Record<string, DeviceBuffer | null> = {};
    // Forward (y in place of x where asked), then the backward from fresh x and dy buffers.
    const fwd = (name: string, f: (y: DeviceBuffer, x: DeviceBuffer) => void) => {
      const x = upload(be, v.x);
      const y = c.inPlace ? x : be.alloc('float32', R * D);
      f(y, x);
      out[name] = y;
    };
    const bwd = (name: string, f: (dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer) => void) => {
      const [dy, x] = [upload(be, v.gy), upload(be, v.x)];
      const dx = c.inPlace === 'dy' ? dy : c.inPlace === 'x' ? x : be.alloc('float32', R * D);
      f(dx, dy, x);
      out[name] = dx;
    };
    const [mean, rstd, rr] = [stat(), stat(), stat()];
    const [dW, dB, rdW] = [grad(c.dW), grad(c.dB), grad(c.dW)];
    fwd('y', (y, x) => be.layerNorm(y, mean, rstd, x, w, b, p));
    bwd('dx', (dx, dy, x) => be.layerNormBackward(dx, dW, dB, dy, x, w, mean, rstd, p));
    fwd('ry', (y, x) => be.rmsNorm(y, rr, x, w, p));
    bwd('rdx', (dx, dy, x) => be.rmsNormBackward(dx, rdW, dy, x, w, rr, p));
    Object.assign(out, { mean, rstd, rr, dW, dB, rdW });
    const got: Record<string, Float32Array> = {};
    for (const [k, buf] of Object.entries(out)) if (buf !== null) got[k] = (await be.read(buf)) as Float32Array;
    return got;
  } finally {
    setNormsWasm(was);
  }
}

/** Bit-for-bit equality, where any NaN equals any NaN (a NaN's payload is not specified by JavaScript). */
function expectSameBits(got: Float32Array, want: Float32Array, name: string): void {
  expect(got.length, name).toBe(want.length);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  let bad = -1;
  for (let i = 0; i < w.length && bad < 0; i++) if (g[i] !== w[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) bad = i;
  expect(bad < 0 ? 'same' : `element ${bad}: ${got[bad]} vs ${want[bad]}`, name).toBe('same');
}

async function expectSame(be: CpuBackend, c: Case): Promise<Record<string, Float32Array>> {
  const want = await run(be, c, false);
  const got = await run(be, c, true);
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const k of Object.keys(want)) expectSameBits(got[k]!, want[k]!, `${JSON.stringify(c)} ${k}`);
  return got;
}

/** Rows for `dim` that cross at least two chunk boundaries and a 32-row block boundary, ending inside both. */
const rowsFor = (dim: number) => Math.max(37, 2 * Math.max(1, Math.floor(CHUNK_ELEMENTS / dim)) + 5);

describe('norm kernels in WebAssembly', () => {
  const one = createCpuBackend({ threads: 1 });
  afterAll(() => one.destroy());
  afterEach(() => {
    setNormsWasm(true);
  });

  it('are available here (Node has WebAssembly SIMD)', () => {
    expect(normsWasm()).not.toBeNull();
  });

  it('give the JavaScript rows’ bits for dims that are not multiples of 4 or 8, rows across chunks and blocks', async () => {
    for (const dim of [1, 3, 5, 8, 767, 769, 4099]) {
      const rows = rowsFor(dim);
      expect(rows * dim).toBeGreaterThan(2 * CHUNK_ELEMENTS);
      await expectSame(one, { rows, dim, weight: true, bias: true, dW: true, dB: true });
    }
  });

  it('give the same bits with and without weight and bias, and for each set of requested column sums', async () => {
    const params = [
      [true, true],
      [true, false],
      [false, false],
    ] as const;
    const grads = [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ] as const;
    for (const [weight, bias] of params) {
      for (const [dW, dB] of grads) await expectSame(one, { rows: 45, dim: 769, weight, bias, dW, dB });
    }
  });

  it('give the same bits in place (y = x, dx = dy, dx = x)', async () => {
    for (const inPlace of ['dy', 'x'] as const) {
      const c: Case = { rows: 41, dim: 767, weight: true, bias: true, dW: true, dB: true, inPlace };
      const got = await expectSame(one, c);
      const apart = await run(one, { ...c, inPlace: undefined }, false);
      for (const k of Object.keys(apart)) expectSameBits(got[k]!, apart[k]!, `${inPlace} ${k}`);
    }
  });

  it('give the same bits with NaN and ±Infinity inputs', async () => {
    for (const dim of [5, 767]) {
      const got = await expectSame(one, { rows: rowsFor(dim), dim, weight: true, bias: true, dW: true, dB: true, special: true });
      expect(got.y!.some(Number.isNaN)).toBe(true);
    }
  });

  it('give the same bits where the order of the float64 sums shows in dx, dWeight and dBias', async () => {
    for (const dim of [7, 767]) {
      for (const dW of [false, true])
        await expectSame(one, { rows: rowsFor(dim), dim, weight: false, bias: false, dW, dB: dW, spikes: true });
    }
  });

  it('give the same bits when |mean| is much larger than the spread', async () => {
    await expectSame(one, { rows: 130, dim: 600, weight: true, bias: true, dW: true, dB: true, offset: 3e7 });
  });

  it('run on the calling thread of a 2-thread backend for float32 (the workers take nothing), the same bits as the JavaScript split', async () => {
    const two = createCpuBackend({ threads: 2 });
    try {
      const pool = two.pool!;
      const c: Case = { rows: 203, dim: 517, weight: true, bias: true, dW: true, dB: true };
      const want = await run(two, c, false);
      const afterJs = pool.workerTasks;
      expect(afterJs).toBeGreaterThan(0);
      const got = await run(two, c, true);
      expect(pool.workerTasks).toBe(afterJs);
      for (const k of Object.keys(want)) expectSameBits(got[k]!, want[k]!, k);
    } finally {
      two.destroy();
    }
  });

  it('leave float32 calls of a backend with more than 2 threads to the JavaScript rows split across them', async () => {
    const three = createCpuBackend({ threads: 3 });
    try {
      const c: Case = { rows: 203, dim: 517, weight: true, bias: true, dW: true, dB: true };
      const want = await run(one, c, false);
      const got = await run(three, c, true);
      expect(three.pool!.workerTasks).toBeGreaterThan(0);
      for (const k of Object.keys(want)) expectSameBits(got[k]!, want[k]!, k);
    } finally {
      three.destroy();
    }
  });
});
