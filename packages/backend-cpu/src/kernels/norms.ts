/**
 * LayerNorm and RMSNorm over the last dimension of x [rows, dim], with their backward passes.
 * Variance is biased (divides by dim) like PyTorch. Statistics are computed in double precision
 * and saved as float32; the forward output uses the saved (float32) mean and rstd so that the
 * backward differentiates exactly the function the forward computed.
 *
 * Each kernel is a row kernel (rows.ts): a self-contained function over a range of rows, split
 * across the backend's worker threads for float32 operands, on the calling thread for 16-bit
 * ones (decoded a chunk of rows at a time into float32 scratch and rounded back), the same
 * function either way, so float16/bfloat16 give the float32 results rounded.
 *
 * Order of the double-precision sums (the meaning of these kernels, the same bits for any thread
 * count):
 * - A row's statistics (Σ(x − x₀), Σ(x − x₀)², Σg, Σg·x̂, Σx²) are four interleaved partial sums:
 *   partial i adds elements j ≡ i (mod 4) in increasing j, the dim mod 4 trailing elements go to
 *   partial 0, and the total is (p0 + p1) + (p2 + p3). Four independent additions per step run
 *   at about four times the speed of one chain of dependent ones.
 * - dWeight / dBias sum over rows in blocks of BLOCK rows: each block adds its rows in order,
 *   then the blocks add in order. Blocks are what the threads split, so the sums do not depend
 *   on how many threads took them.
 *
 * Loops are unrolled (by 4 for the sums, by 8 for the outputs) because V8 spends about as long
 * on a loop iteration's own bookkeeping as on one element; unrolling changes no result.
 *
 * Float32 calls run the rows' WebAssembly SIMD twins (norms-wasm.ts, the same bits) on the calling
 * thread where the engine has them (and the backend few threads: see norms-wasm.ts `wasmFor`).
 */
import type { DeviceBuffer, KernelFamily, KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { KernelPool } from '../parallel.js';
import { forRows } from '../rows.js';
import { decodeInto, roundInto, scratch } from '../storage.js';
import { wasmFor } from './norms-wasm.js';

/** Rows per block of the dWeight / dBias column sums (the float64 partial sums of one take 2/BLOCK of x's bytes). */
const BLOCK = 32;

/** Elements a 16-bit chunk of rows aims at (whole blocks of rows, at least one). */
const CHUNK_ELEMENTS = 16 * 1024;

/**
 * y = (x − mean) · rstd · w + b over rows [r0, r1), rstd = 1/√(var + eps), b optional. Sums of
 * (x − x₀) keep E[x²] − E[x]² free of cancellation when |mean| ≫ std.
 */
function layerNormRows(
  y: Float32Array,
  meanOut: Float32Array,
  rstdOut: Float32Array,
  x: Float32Array,
  w: Float32Array,
  b: Float32Array | null,
  dim: number,
  eps: number,
  r0: number,
  r1: number,
): void {
  const dim4 = dim - (dim % 4);
  const dim8 = dim - (dim % 8);
  for (let r = r0; r < r1; r++) {
    const base = r * dim;
    const shift = dim > 0 ? x[base] : 0;
    let a0 = 0;
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    let q0 = 0;
    let q1 = 0;
    let q2 = 0;
    let q3 = 0;
    let j = 0;
    for (; j < dim4; j += 4) {
      const i = base + j;
      const d0 = x[i] - shift;
      const d1 = x[i + 1] - shift;
      const d2 = x[i + 2] - shift;
      const d3 = x[i + 3] - shift;
      a0 += d0;
      a1 += d1;
      a2 += d2;
      a3 += d3;
      q0 += d0 * d0;
      q1 += d1 * d1;
      q2 += d2 * d2;
      q3 += d3 * d3;
    }
    for (; j < dim; j++) {
      const d = x[base + j] - shift;
      a0 += d;
      q0 += d * d;
    }
    const s1 = a0 + a1 + (a2 + a3);
    const s2 = q0 + q1 + (q2 + q3);
    const variance = Math.max(0, (s2 - (s1 * s1) / dim) / dim);
    const m = Math.fround(shift + s1 / dim);
    const s = Math.fround(1 / Math.sqrt(variance + eps));
    meanOut[r] = m;
    rstdOut[r] = s;
    let k = 0;
    if (b === null) {
      for (; k < dim8; k += 8) {
        const i = base + k;
        y[i] = (x[i] - m) * s * w[k];
        y[i + 1] = (x[i + 1] - m) * s * w[k + 1];
        y[i + 2] = (x[i + 2] - m) * s * w[k + 2];
        y[i + 3] = (x[i + 3] - m) * s * w[k + 3];
        y[i + 4] = (x[i + 4] - m) * s * w[k + 4];
        y[i + 5] = (x[i + 5] - m) * s * w[k + 5];
        y[i + 6] = (x[i + 6] - m) * s * w[k + 6];
        y[i + 7] = (x[i + 7] - m) * s * w[k + 7];
      }
      for (; k < dim; k++) y[base + k] = (x[base + k] - m) * s * w[k];
    } else {
      for (; k < dim8; k += 8) {
        const i = base + k;
        y[i] = (x[i] - m) * s * w[k] + b[k];
        y[i + 1] = (x[i + 1] - m) * s * w[k + 1] + b[k + 1];
        y[i + 2] = (x[i + 2] - m) * s * w[k + 2] + b[k + 2];
        y[i + 3] = (x[i + 3] - m) * s * w[k + 3] + b[k + 3];
        y[i + 4] = (x[i + 4] - m) * s * w[k + 4] + b[k + 4];
        y[i + 5] = (x[i + 5] - m) * s * w[k + 5] + b[k + 5];
        y[i + 6] = (x[i + 6] - m) * s * w[k + 6] + b[k + 6];
        y[i + 7] = (x[i + 7] - m) * s * w[k + 7] + b[k + 7];
      }
      for (; k < dim; k++) y[base + k] = (x[base + k] - m) * s * w[k] + b[k];
    }
  }
}

/**
 * With x̂ = (x − mean)·rstd and g = dy·w: dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)) over the
 * rows of blocks [u0, u1) (blocks of `block` rows; `rows` bounds the last). With `dwPart`, row
 * u·dim of dwPart / dbPart gets block u's Σ dy·x̂ / Σ dy.
 */
function layerNormBackwardRows(
  dx: Float32Array,
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  dim: number,
  rows: number,
  block: number,
  dwPart: Float64Array | null,
  dbPart: Float64Array | null,
  u0: number,
  u1: number,
): void {
  const dim4 = dim - (dim % 4);
  const dim8 = dim - (dim % 8);
  for (let u = u0; u < u1; u++) {
    const pb = u * dim;
    if (dwPart !== null && dbPart !== null) {
      dwPart.fill(0, pb, pb + dim);
      dbPart.fill(0, pb, pb + dim);
    }
    const rEnd = Math.min(rows, (u + 1) * block);
    for (let r = u * block; r < rEnd; r++) {
      const base = r * dim;
      const m = mean[r];
      const s = rstd[r];
      let g0 = 0;
      let g1 = 0;
      let g2 = 0;
      let g3 = 0;
      let h0 = 0;
      let h1 = 0;
      let h2 = 0;
      let h3 = 0;
      let j = 0;
      if (dwPart !== null && dbPart !== null) {
        // dWeight / dBias terms in the same pass (before dx: dx may be dy or x itself, in place).
        for (; j < dim4; j += 4) {
          const i = base + j;
          const p = pb + j;
          const d0 = dy[i];
          const d1 = dy[i + 1];
          const d2 = dy[i + 2];
          const d3 = dy[i + 3];
          const x0 = (x[i] - m) * s;
          const x1 = (x[i + 1] - m) * s;
          const x2 = (x[i + 2] - m) * s;
          const x3 = (x[i + 3] - m) * s;
          const e0 = d0 * w[j];
          const e1 = d1 * w[j + 1];
          const e2 = d2 * w[j + 2];
          const e3 = d3 * w[j + 3];
          g0 += e0;
          g1 += e1;
          g2 += e2;
          g3 += e3;
          h0 += e0 * x0;
          h1 += e1 * x1;
          h2 += e2 * x2;
          h3 += e3 * x3;
          dwPart[p] += d0 * x0;
          dwPart[p + 1] += d1 * x1;
          dwPart[p + 2] += d2 * x2;
          dwPart[p + 3] += d3 * x3;
          dbPart[p] += d0;
          dbPart[p + 1] += d1;
          dbPart[p + 2] += d2;
          dbPart[p + 3] += d3;
        }
        for (; j < dim; j++) {
          const d = dy[base + j];
          const xh = (x[base + j] - m) * s;
          const e = d * w[j];
          g0 += e;
          h0 += e * xh;
          dwPart[pb + j] += d * xh;
          dbPart[pb + j] += d;
        }
      } else {
        for (; j < dim4; j += 4) {
          const i = base + j;
          const e0 = dy[i] * w[j];
          const e1 = dy[i + 1] * w[j + 1];
          const e2 = dy[i + 2] * w[j + 2];
          const e3 = dy[i + 3] * w[j + 3];
          g0 += e0;
          g1 += e1;
          g2 += e2;
          g3 += e3;
          h0 += e0 * ((x[i] - m) * s);
          h1 += e1 * ((x[i + 1] - m) * s);
          h2 += e2 * ((x[i + 2] - m) * s);
          h3 += e3 * ((x[i + 3] - m) * s);
        }
        for (; j < dim; j++) {
          const e = dy[base + j] * w[j];
          g0 += e;
          h0 += e * ((x[base + j] - m) * s);
        }
      }
      const meanG = (g0 + g1 + (g2 + g3)) / dim;
      const meanGX = (h0 + h1 + (h2 + h3)) / dim;
      let k = 0;
      for (; k < dim8; k += 8) {
        const i = base + k;
        dx[i] = s * (dy[i] * w[k] - meanG - (x[i] - m) * s * meanGX);
        dx[i + 1] = s * (dy[i + 1] * w[k + 1] - meanG - (x[i + 1] - m) * s * meanGX);
        dx[i + 2] = s * (dy[i + 2] * w[k + 2] - meanG - (x[i + 2] - m) * s * meanGX);
        dx[i + 3] = s * (dy[i + 3] * w[k + 3] - meanG - (x[i + 3] - m) * s * meanGX);
        dx[i + 4] = s * (dy[i + 4] * w[k + 4] - meanG - (x[i + 4] - m) * s * meanGX);
        dx[i + 5] = s * (dy[i + 5] * w[k + 5] - meanG - (x[i + 5] - m) * s * meanGX);
        dx[i + 6] = s * (dy[i + 6] * w[k + 6] - meanG - (x[i + 6] - m) * s * meanGX);
        dx[i + 7] = s * (dy[i + 7] * w[k + 7] - meanG - (x[i + 7] - m) * s * meanGX);
      }
      for (; k < dim; k++) dx[base + k] = s * (dy[base + k] * w[k] - meanG - (x[base + k] - m) * s * meanGX);
    }
  }
}

/** y = x · rstd · w over rows [r0, r1), rstd = 1/√(mean(x²) + eps). */
function rmsNormRows(
  y: Float32Array,
  rstdOut: Float32Array,
  x: Float32Array,
  w: Float32Array,
  dim: number,
  eps: number,
  r0: number,
  r1: number,
): void {
  const dim4 = dim - (dim % 4);
  const dim8 = dim - (dim % 8);
  for (let r = r0; r < r1; r++) {
    const base = r * dim;
    let q0 = 0;
    let q1 = 0;
    let q2 = 0;
    let q3 = 0;
    let j = 0;
    for (; j < dim4; j += 4) {
      const i = base + j;
      const v0 = x[i];
      const v1 = x[i + 1];
      const v2 = x[i + 2];
      const v3 = x[i + 3];
      q0 += v0 * v0;
      q1 += v1 * v1;
      q2 += v2 * v2;
      q3 += v3 * v3;
    }
    for (; j < dim; j++) {
      const v = x[base + j];
      q0 += v * v;
    }
    const s = Math.fround(1 / Math.sqrt((q0 + q1 + (q2 + q3)) / dim + eps));
    rstdOut[r] = s;
    let k = 0;
    for (; k < dim8; k += 8) {
      const i = base + k;
      y[i] = x[i] * s * w[k];
      y[i + 1] = x[i + 1] * s * w[k + 1];
      y[i + 2] = x[i + 2] * s * w[k + 2];
      y[i + 3] = x[i + 3] * s * w[k + 3];
      y[i + 4] = x[i + 4] * s * w[k + 4];
      y[i + 5] = x[i + 5] * s * w[k + 5];
      y[i + 6] = x[i + 6] * s * w[k + 6];
      y[i + 7] = x[i + 7] * s * w[k + 7];
    }
    for (; k < dim; k++) y[base + k] = x[base + k] * s * w[k];
  }
}

/**
 * With x̂ = x·rstd and g = dy·w: dx = rstd · (g − x̂ · mean(g·x̂)) over the rows of blocks
 * [u0, u1) (as layerNormBackwardRows); with `dwPart`, row u·dim gets block u's Σ dy·x̂.
 */
function rmsNormBackwardRows(
  dx: Float32Array,
  dy: Float32Array,
  x: Float32Array,
  w: Float32Array,
  rstd: Float32Array,
  dim: number,
  rows: number,
  block: number,
  dwPart: Float64Array | null,
  u0: number,
  u1: number,
): void {
  const dim4 = dim - (dim % 4);
  const dim8 = dim - (dim % 8);
  for (let u = u0; u < u1; u++) {
    const pb = u * dim;
    if (dwPart !== null) dwPart.fill(0, pb, pb + dim);
    const rEnd = Math.min(rows, (u + 1) * block);
    for (let r = u * block; r < rEnd; r++) {
      const base = r * dim;
      const s = rstd[r];
      let h0 = 0;
      let h1 = 0;
      let h2 = 0;
      let h3 = 0;
      let j = 0;
      if (dwPart !== null) {
        // dWeight terms in the same pass (before dx: dx may be dy or x itself, in place).
        for (; j < dim4; j += 4) {
          const i = base + j;
          const p = pb + j;
          const d0 = dy[i];
          const d1 = dy[i + 1];
          const d2 = dy[i + 2];
          const d3 = dy[i + 3];
          const x0 = x[i] * s;
          const x1 = x[i + 1] * s;
          const x2 = x[i + 2] * s;
          const x3 = x[i + 3] * s;
          h0 += d0 * w[j] * x0;
          h1 += d1 * w[j + 1] * x1;
          h2 += d2 * w[j + 2] * x2;
          h3 += d3 * w[j + 3] * x3;
          dwPart[p] += d0 * x0;
          dwPart[p + 1] += d1 * x1;
          dwPart[p + 2] += d2 * x2;
          dwPart[p + 3] += d3 * x3;
        }
        for (; j < dim; j++) {
          const d = dy[base + j];
          const xh = x[base + j] * s;
          h0 += d * w[j] * xh;
          dwPart[pb + j] += d * xh;
        }
      } else {
        for (; j < dim4; j += 4) {
          const i = base + j;
          h0 += dy[i] * w[j] * (x[i] * s);
          h1 += dy[i + 1] * w[j + 1] * (x[i + 1] * s);
          h2 += dy[i + 2] * w[j + 2] * (x[i + 2] * s);
          h3 += dy[i + 3] * w[j + 3] * (x[i + 3] * s);
        }
        for (; j < dim; j++) h0 += dy[base + j] * w[j] * (x[base + j] * s);
      }
      const meanGX = (h0 + h1 + (h2 + h3)) / dim;
      let k = 0;
      for (; k < dim8; k += 8) {
        const i = base + k;
        dx[i] = s * (dy[i] * w[k] - x[i] * s * meanGX);
        dx[i + 1] = s * (dy[i + 1] * w[k + 1] - x[i + 1] * s * meanGX);
        dx[i + 2] = s * (dy[i + 2] * w[k + 2] - x[i + 2] * s * meanGX);
        dx[i + 3] = s * (dy[i + 3] * w[k + 3] - x[i + 3] * s * meanGX);
        dx[i + 4] = s * (dy[i + 4] * w[k + 4] - x[i + 4] * s * meanGX);
        dx[i + 5] = s * (dy[i + 5] * w[k + 5] - x[i + 5] * s * meanGX);
        dx[i + 6] = s * (dy[i + 6] * w[k + 6] - x[i + 6] * s * meanGX);
        dx[i + 7] = s * (dy[i + 7] * w[k + 7] - x[i + 7] * s * meanGX);
      }
      for (; k < dim; k++) dx[base + k] = s * (dy[base + k] * w[k] - x[base + k] * s * meanGX);
    }
  }
}

let onesCache = new Float32Array(0);

/**
 * A weight or bias as a float32 array of its own (element j at index j) that is cheap to hand to
 * the workers: the buffer's array when it is float32 and exactly `dim` long or shared, else a
 * copy; null for null.
 */
function paramRow(buf: DeviceBuffer | null, dim: number): Float32Array | null {
  if (buf === null) return null;
  const b = buf as CpuBuffer;
  if (b.dtype === 'float32' && (b.data.length === dim || KernelPool.shared(b.data))) return b.data as Float32Array;
  const out = new Float32Array(dim);
  decodeInto(b, 0, dim, out);
  return out;
}

/** The weight, or ones when there is none (g·1 = g exactly, so one kernel serves both). */
function weightRow(buf: DeviceBuffer | null, dim: number): Float32Array {
  const w = paramRow(buf, dim);
  if (w !== null) return w;
  if (onesCache.length !== dim) onesCache = new Float32Array(dim).fill(1);
  return onesCache;
}

/** Scratch kept between calls: [plain, shared] per slot. */
const kept: [Float32Array[], Float32Array[]] = [[], []];
const keptF64: [Float64Array | null, Float64Array | null] = [null, null];

/** Most elements of a scratch array kept between calls; larger calls get a fresh one. */
const MAX_KEPT = 1 << 20;

/** Float32 scratch of at least n elements, in shared memory when the backend has worker threads. */
function keptF32(ctx: CpuContext, slot: number, n: number): Float32Array {
  const k = ctx.pool === null ? 0 : 1;
  const have = kept[k][slot];
  if (have !== undefined && have.length >= n) return have;
  const bytes = Math.max(n, 1024) * 4;
  const fresh = new Float32Array(k === 1 ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  if (n <= MAX_KEPT) kept[k][slot] = fresh;
  return fresh;
}

/** Float64 scratch of at least n elements for partial sums, shared as keptF32. */
function partials(ctx: CpuContext, n: number): Float64Array {
  const k = ctx.pool === null ? 0 : 1;
  const have = keptF64[k];
  if (have !== null && have.length >= n) return have;
  const bytes = Math.max(n, 1024) * 8;
  const fresh = new Float64Array(k === 1 ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes));
  if (n <= MAX_KEPT) keptF64[k] = fresh;
  return fresh;
}

/**
 * Where the row kernels write per-row statistics: the buffer's array, or, when the backend has
 * worker threads and the array is not shared (it is small), shared scratch that `statsBack`
 * copies into it afterwards.
 */
function statsOut(ctx: CpuContext, data: Float32Array, slot: number, rows: number): Float32Array {
  return ctx.pool === null || KernelPool.shared(data) ? data : keptF32(ctx, slot, rows);
}

function statsBack(from: Float32Array, to: Float32Array, rows: number): void {
  if (from !== to) to.set(from.subarray(0, rows));
}

/**
 * The path for 16-bit operands, on the calling thread: `run(y, ins, r0, n)` computes rows
 * [r0, r0 + n) from the inputs' rows decoded to float32 (each at index 0) into `y`, a view of a
 * float32 output or scratch rounded into a 16-bit one. Chunks are whole blocks of BLOCK rows.
 */
function chunked(
  rows: number,
  dim: number,
  out: CpuBuffer,
  ins: readonly CpuBuffer[],
  run: (y: Float32Array, ins: Float32Array[], r0: number, n: number) => void,
): void {
  const step = BLOCK * Math.max(1, Math.floor(CHUNK_ELEMENTS / (BLOCK * Math.max(1, dim))));
  for (let r0 = 0; r0 < rows; r0 += step) {
    const n = Math.min(step, rows - r0);
    const xs = ins.map((b, slot) => {
      if (b.dtype === 'float32') return (b.data as Float32Array).subarray(r0 * dim, (r0 + n) * dim);
      const values = scratch(slot, n * dim);
      decodeInto(b, r0 * dim, n * dim, values);
      return values;
    });
    const f32 = out.dtype === 'float32';
    const y = f32 ? (out.data as Float32Array).subarray(r0 * dim, (r0 + n) * dim) : scratch(ins.length, n * dim);
    run(y, xs, r0, n);
    if (!f32) roundInto(out.data as Uint16Array, out.dtype as 'float16' | 'bfloat16', r0 * dim, y, n * dim);
  }
}

const allF32 = (...bufs: CpuBuffer[]): boolean => bufs.every((b) => b.dtype === 'float32');
const f32 = (buf: DeviceBuffer): Float32Array => (buf as CpuBuffer).data as Float32Array;

/** out[j] = Σ_u part[u·dim + j] over blocks u in order (float64), rounded to float32. */
function sumBlocks(part: Float64Array, offset: number, units: number, dim: number, out: Float32Array): void {
  const acc = new Float64Array(dim);
  for (let u = 0; u < units; u++) {
    const pb = offset + u * dim;
    for (let j = 0; j < dim; j++) acc[j] += part[pb + j];
  }
  out.set(acc);
}

const layerNorm: KernelImpl<CpuContext, 'layerNorm'> = (ctx, out, mean, rstd, x, weight, bias, p) => {
  const { rows, dim, eps } = p;
  const [o, xb] = [out as CpuBuffer, x as CpuBuffer];
  const [meanData, rstdData] = [f32(mean), f32(rstd)];
  const w = weightRow(weight, dim);
  const b = paramRow(bias, dim);
  const k = allF32(o, xb) ? wasmFor(ctx, dim) : null;
  if (k !== null) return k.layerNorm(f32(o), meanData, rstdData, f32(xb), w, b, rows, dim, eps);
  if (allF32(o, xb)) {
    const m = statsOut(ctx, meanData, 0, rows);
    const s = statsOut(ctx, rstdData, 1, rows);
    forRows(ctx, layerNormRows, rows, rows * dim, [f32(o), m, s, f32(xb), w, b, dim, eps], [0, 1, 2]);
    statsBack(m, meanData, rows);
    statsBack(s, rstdData, rows);
    return;
  }
  chunked(rows, dim, o, [xb], (y, [xs], r0, n) =>
    layerNormRows(y, meanData.subarray(r0, r0 + n), rstdData.subarray(r0, r0 + n), xs!, w, b, dim, eps, 0, n),
  );
};

/** dx as layerNormBackwardRows; dWeight = Σ_rows dy·x̂, dBias = Σ_rows dy (by blocks, see the top of the file). */
const layerNormBackward: KernelImpl<CpuContext, 'layerNormBackward'> = (ctx, dx, dWeight, dBias, dy, x, weight, mean, rstd, p) => {
  const { rows, dim } = p;
  const [o, gb, xb] = [dx as CpuBuffer, dy as CpuBuffer, x as CpuBuffer];
  const w = weightRow(weight, dim);
  const [mu, rs] = [f32(mean), f32(rstd)];
  const params = dWeight !== null || dBias !== null;
  const k = allF32(o, gb, xb) ? wasmFor(ctx, dim) : null;
  if (k !== null)
    return k.backward(false, f32(o), dWeight && f32(dWeight), dBias && f32(dBias), f32(gb), f32(xb), w, mu, rs, rows, dim, BLOCK);
  const block = params ? BLOCK : 1;
  const units = Math.ceil(rows / block);
  const part = params ? partials(ctx, 2 * units * dim) : null;
  const dwPart = part === null ? null : part.subarray(0, units * dim);
  const dbPart = part === null ? null : part.subarray(units * dim, 2 * units * dim);
  if (allF32(o, gb, xb)) {
    const args = [f32(o), f32(gb), f32(xb), w, mu, rs, dim, rows, block, dwPart, dbPart];
    forRows(ctx, layerNormBackwardRows, units, rows * dim, args, [0, 9, 10]);
  } else {
    chunked(rows, dim, o, [gb, xb], (ds, [g, xs], r0, n) => {
      const pb = (r0 / block) * dim;
      const [dwp, dbp] = [dwPart?.subarray(pb) ?? null, dbPart?.subarray(pb) ?? null];
      const [m, s] = [mu.subarray(r0, r0 + n), rs.subarray(r0, r0 + n)];
      layerNormBackwardRows(ds, g!, xs!, w, m, s, dim, n, block, dwp, dbp, 0, Math.ceil(n / block));
    });
  }
  if (part !== null && dWeight !== null) sumBlocks(part, 0, units, dim, f32(dWeight));
  if (part !== null && dBias !== null) sumBlocks(part, units * dim, units, dim, f32(dBias));
};

const rmsNorm: KernelImpl<CpuContext, 'rmsNorm'> = (ctx, out, rstd, x, weight, p) => {
  const { rows, dim, eps } = p;
  const [o, xb] = [out as CpuBuffer, x as CpuBuffer];
  const rstdData = f32(rstd);
  const w = weightRow(weight, dim);
  const k = allF32(o, xb) ? wasmFor(ctx, dim) : null;
  if (k !== null) return k.rmsNorm(f32(o), rstdData, f32(xb), w, rows, dim, eps);
  if (allF32(o, xb)) {
    const s = statsOut(ctx, rstdData, 1, rows);
    forRows(ctx, rmsNormRows, rows, rows * dim, [f32(o), s, f32(xb), w, dim, eps], [0, 1]);
    statsBack(s, rstdData, rows);
    return;
  }
  chunked(rows, dim, o, [xb], (y, [xs], r0, n) => rmsNormRows(y, rstdData.subarray(r0, r0 + n), xs!, w, dim, eps, 0, n));
};

/** dx as rmsNormBackwardRows; dWeight = Σ_rows dy·x̂ (by blocks, see the top of the file). */
const rmsNormBackward: KernelImpl<CpuContext, 'rmsNormBackward'> = (ctx, dx, dWeight, dy, x, weight, rstd, p) => {
  const { rows, dim } = p;
  const [o, gb, xb] = [dx as CpuBuffer, dy as CpuBuffer, x as CpuBuffer];
  const w = weightRow(weight, dim);
  const rs = f32(rstd);
  const k = allF32(o, gb, xb) ? wasmFor(ctx, dim) : null;
  if (k !== null) return k.backward(true, f32(o), dWeight && f32(dWeight), null, f32(gb), f32(xb), w, null, rs, rows, dim, BLOCK);
  const block = dWeight !== null ? BLOCK : 1;
  const units = Math.ceil(rows / block);
  const dwPart = dWeight !== null ? partials(ctx, units * dim) : null;
  if (allF32(o, gb, xb)) {
    forRows(ctx, rmsNormBackwardRows, units, rows * dim, [f32(o), f32(gb), f32(xb), w, rs, dim, rows, block, dwPart], [0, 8]);
  } else {
    chunked(rows, dim, o, [gb, xb], (ds, [g, xs], r0, n) => {
      const dwp = dwPart?.subarray((r0 / block) * dim) ?? null;
      rmsNormBackwardRows(ds, g!, xs!, w, rs.subarray(r0, r0 + n), dim, n, block, dwp, 0, Math.ceil(n / block));
    });
  }
  if (dwPart !== null && dWeight !== null) sumBlocks(dwPart, 0, units, dim, f32(dWeight));
};

/** The norm kernels; their arguments are checked in core (kernelChecks). */
export const normKernels = { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } satisfies KernelFamily<CpuContext>;
