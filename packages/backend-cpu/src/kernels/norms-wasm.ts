/**
 * The WebAssembly SIMD twins of norms.ts's float32 row kernels (wasm/norms.as.ts), run on the
 * calling thread: the same bits as the JavaScript rows (see the module), about 3–4 times as fast.
 *
 * The kernels work in the module's own memory. A call copies the weight and bias rows in once,
 * then walks the rows in chunks of about CHUNK_ELEMENTS elements: each input chunk is copied in
 * (`TypedArray.set` of a subarray), the kernel runs, the outputs are copied out. Every input of a
 * chunk is in the module before any output of it is written, so dx may be dy or x (in place). The
 * dWeight / dBias block partials and their float64 totals stay in the module for the whole call
 * (a 32-row block may span chunks) and only the totals come out, rounded to float32.
 */
import type { CpuContext } from '../buffer.js';
import { NORMS_WASM_BASE64 } from './norms.wasm.js';

/** Elements of a chunk of rows (at least one row): four float32 chunks (x, dy, out and slack) fit in L2. */
export const CHUNK_ELEMENTS = 8192;

interface Exports {
  memory: WebAssembly.Memory;
  layerNormRows(y: number, mean: number, rstd: number, x: number, w: number, b: number, dim: number, eps: number, n: number): void;
  layerNormBackwardRows(
    dx: number,
    dy: number,
    x: number,
    w: number,
    mean: number,
    rstd: number,
    dim: number,
    n: number,
    r0: number,
    rows: number,
    block: number,
    dwPart: number,
    dbPart: number,
    dwSum: number,
    dbSum: number,
  ): void;
  rmsNormRows(y: number, rstd: number, x: number, w: number, dim: number, eps: number, n: number): void;
  rmsNormBackwardRows(
    dx: number,
    dy: number,
    x: number,
    w: number,
    rstd: number,
    dim: number,
    n: number,
    r0: number,
    rows: number,
    block: number,
    dwPart: number,
    dwSum: number,
  ): void;
}

const PAGE = 65536;
const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;

/** Byte addresses of one call's arrays in the module's memory (0 is never one: it means "none" to the kernels). */
interface Layout {
  /** Rows per chunk. */
  step: number;
  w: number;
  b: number;
  dwPart: number;
  dbPart: number;
  dwSum: number;
  dbSum: number;
  x: number;
  dy: number;
  out: number;
  mean: number;
  rstd: number;
}

/** One instance and its memory, laid out per call for the call's row length. */
class NormsWasm {
  private readonly fns: Exports;
  private f32 = new Float32Array(0);
  private f64 = new Float64Array(0);

  constructor(module: WebAssembly.Module) {
    this.fns = new WebAssembly.Instance(module, {}).exports as unknown as Exports;
  }

  /** Lays out a call on rows of `dim` and makes room for it (the views are re-read after growing). */
  private layout(dim: number): Layout {
    const step = Math.max(1, Math.floor(CHUNK_ELEMENTS / dim));
    const row = align16(4 * dim);
    const part = align16(8 * dim);
    const chunk = align16(4 * step * dim);
    const L: Layout = { step, w: 64, b: 0, dwPart: 0, dbPart: 0, dwSum: 0, dbSum: 0, x: 0, dy: 0, out: 0, mean: 0, rstd: 0 };
    L.b = L.w + row;
    L.dwPart = L.b + row;
    L.dbPart = L.dwPart + part;
    L.dwSum = L.dbPart + part;
    L.dbSum = L.dwSum + part;
    L.x = L.dbSum + part;
    L.dy = L.x + chunk;
    L.out = L.dy + chunk;
    L.mean = L.out + chunk;
    L.rstd = L.mean + align16(4 * step);
    const end = L.rstd + align16(4 * step);
    const memory = this.fns.memory;
    const have = memory.buffer.byteLength;
    if (end > have) memory.grow(Math.ceil((end - have) / PAGE));
    if (this.f32.buffer !== memory.buffer) {
      this.f32 = new Float32Array(memory.buffer);
      this.f64 = new Float64Array(memory.buffer);
    }
    return L;
  }

  /** `from` (its first n elements) into the module at byte address `at`. */
  private put(from: Float32Array, start: number, n: number, at: number): void {
    this.f32.set(from.subarray(start, start + n), at >> 2);
  }

  /** n elements at byte address `at` into `to` from `start`. */
  private take(at: number, to: Float32Array, start: number, n: number): void {
    to.set(this.f32.subarray(at >> 2, (at >> 2) + n), start);
  }

  layerNorm(
    y: Float32Array,
    mean: Float32Array,
    rstd: Float32Array,
    x: Float32Array,
    w: Float32Array,
    b: Float32Array | null,
    rows: number,
    dim: number,
    eps: number,
  ): void {
    const L = this.layout(dim);
    this.put(w, 0, dim, L.w);
    if (b !== null) this.put(b, 0, dim, L.b);
    for (let r0 = 0; r0 < rows; r0 += L.step) {
      const n = Math.min(L.step, rows - r0);
      this.put(x, r0 * dim, n * dim, L.x);
      this.fns.layerNormRows(L.out, L.mean, L.rstd, L.x, L.w, b === null ? 0 : L.b, dim, eps, n);
      this.take(L.out, y, r0 * dim, n * dim);
      this.take(L.mean, mean, r0, n);
      this.take(L.rstd, rstd, r0, n);
    }
  }

  rmsNorm(y: Float32Array, rstd: Float32Array, x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number): void {
    const L = this.layout(dim);
    this.put(w, 0, dim, L.w);
    for (let r0 = 0; r0 < rows; r0 += L.step) {
      const n = Math.min(L.step, rows - r0);
      this.put(x, r0 * dim, n * dim, L.x);
      this.fns.rmsNormRows(L.out, L.rstd, L.x, L.w, dim, eps, n);
      this.take(L.out, y, r0 * dim, n * dim);
      this.take(L.rstd, rstd, r0, n);
    }
  }

  /**
   * dx of either backward (`rms`: rmsNorm's, with no mean) and, where `dw` / `db` are given, the
   * column sums Σ dy·x̂ / Σ dy by blocks of `block` rows, rounded to float32 into them.
   */
  backward(
    rms: boolean,
    dx: Float32Array,
    dw: Float32Array | null,
    db: Float32Array | null,
    dy: Float32Array,
    x: Float32Array,
    w: Float32Array,
    mean: Float32Array | null,
    rstd: Float32Array,
    rows: number,
    dim: number,
    block: number,
  ): void {
    const L = this.layout(dim);
    this.put(w, 0, dim, L.w);
    const params = dw !== null || db !== null;
    if (params) this.f64.fill(0, L.dwSum >> 3, L.x >> 3); // both totals start at 0, as sumBlocks' accumulator
    const [pw, pb] = params ? [L.dwPart, L.dbPart] : [0, 0];
    for (let r0 = 0; r0 < rows; r0 += L.step) {
      const n = Math.min(L.step, rows - r0);
      this.put(dy, r0 * dim, n * dim, L.dy);
      this.put(x, r0 * dim, n * dim, L.x);
      this.put(rstd, r0, n, L.rstd);
      if (rms) {
        this.fns.rmsNormBackwardRows(L.out, L.dy, L.x, L.w, L.rstd, dim, n, r0, rows, block, pw, L.dwSum);
      } else {
        this.put(mean!, r0, n, L.mean);
        this.fns.layerNormBackwardRows(L.out, L.dy, L.x, L.w, L.mean, L.rstd, dim, n, r0, rows, block, pw, pb, L.dwSum, L.dbSum);
      }
      this.take(L.out, dx, r0 * dim, n * dim);
    }
    // Float32Array.set rounds each float64 total once, as norms.ts's sumBlocks.
    if (dw !== null) dw.set(this.f64.subarray(L.dwSum >> 3, (L.dwSum >> 3) + dim));
    if (db !== null) db.set(this.f64.subarray(L.dbSum >> 3, (L.dbSum >> 3) + dim));
  }
}

let compiled: WebAssembly.Module | null | undefined;
let instance: NormsWasm | null = null;
let enabled = true;

/** The instance on this thread, or null where WebAssembly SIMD is unavailable (or after `setNormsWasm(false)`). */
export function normsWasm(): NormsWasm | null {
  if (!enabled) return null;
  if (instance !== null) return instance;
  if (compiled === undefined) {
    try {
      const bin = atob(NORMS_WASM_BASE64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      // Synchronous compile: browsers allow it on the main thread for modules under 4 KiB (this one is).
      compiled = new WebAssembly.Module(bytes);
    } catch {
      compiled = null; // no WebAssembly SIMD: the JavaScript rows run
    }
  }
  if (compiled === null) return null;
  try {
    instance = new NormsWasm(compiled);
  } catch {
    compiled = null;
  }
  return instance;
}

/**
 * Turns the WebAssembly kernels off (the JavaScript rows run) or back on; returns the previous
 * setting. For tests and benchmarks that compare the two.
 */
export function setNormsWasm(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/**
 * Most threads of a backend whose float32 calls run the wasm kernels on the calling thread rather
 * than the JavaScript rows split across its threads. Measured on float32 [1024, 768] (2 cores,
 * benchmarks/norm-time.ts wasm, medians of 5 rounds per kernel): the wasm kernels on one thread
 * were 2.9–4.0 times as fast as the JavaScript rows on one thread and 1.4–2.2 times as fast as
 * the JavaScript rows split across two.
 * More threads were not measured; by those ratios the split could catch up from 3 or 4 threads on.
 */
const WASM_MAX_THREADS = 2;

/** The wasm kernels for a float32 call on rows of `dim`, or null: norms.ts's JavaScript rows run. */
export function wasmFor(ctx: CpuContext, dim: number): NormsWasm | null {
  return dim > 0 && (ctx.pool === null || ctx.pool.threads <= WASM_MAX_THREADS) ? normsWasm() : null;
}
