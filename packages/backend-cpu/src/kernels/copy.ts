/**
 * Data movement: fill, strided copy with dtype conversion, and its backward (addInto).
 *
 * Copies between buffers of one dtype, and addInto in float32 over short or strided rows, run as
 * row kernels (../rows.ts): split across the backend's worker threads when it has them, each row
 * walked from the view's odometer (ViewPlan.outer), so no per-row start table is built. Rows whose
 * ends are 8-byte aligned move as float64 words; otherwise contiguous rows shorter than 128
 * elements move element by element, unrolled by 8 (V8 checks every typed-array access, and the
 * unrolled loop ran about twice as fast as the plain one), longer ones by `TypedArray.set` (a
 * memmove, whose per-row view allocation no longer matters at that length). addInto over rows of
 * step 1 and at least MIN_ROW elements adds in WebAssembly SIMD on this thread where the engine
 * has it (./elementwise-wasm.ts), with the same float32 sums; the loops here are its meaning.
 *
 * Conversions: float → float rounds to nearest even; int32 → float is exact up to 2²⁴ and rounds
 * beyond; float → int32 truncates toward zero, and a NaN, ±Inf or out-of-range value is an error.
 * A copy between buffers of the same dtype moves raw bits (NaN payloads included).
 *
 * Row starts of a view plan are doubles (Float64Array); element indices are below 2^32 (the
 * longest typed array), so `>>> 0` turns them into integers, which V8 indexes much faster.
 */
import type { DeviceBuffer, KernelFamily, View } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { forRows } from '../rows.js';
import { at, decodeInto, decodeTable, fillRaw, readF32, roundInto, toBf16, toF16 } from '../storage.js';
import { planViews, type ViewPlan } from '../view.js';
import { addIntoWasm, elementwiseWasm, MIN_ROW } from './elementwise-wasm.js';

type Raw = Float32Array | Uint16Array | Int32Array;

function fill(_ctx: CpuContext, out: DeviceBuffer, value: number): void {
  const o = out as CpuBuffer;
  if (o.dtype === 'int32' || o.dtype === 'float32') fillRaw(o.data, value);
  else fillRaw(o.data, o.dtype === 'bfloat16' ? toBf16(value) : toF16(value));
}

/** out[i] = x[view(i)] (raw bits for equal dtypes; through float32 otherwise). */
function copy(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  const src = x as CpuBuffer;
  const plan = planViews(view.shape, [view]);
  const dst = out as CpuBuffer;
  if (plan.count === 0) return;
  if (dst.dtype === src.dtype) {
    gatherRaw(ctx, src.data, plan, dst.data);
  } else if (dst.dtype === 'float32') {
    gatherF32(src, plan, dst.data as Float32Array);
  } else if (dst.dtype === 'int32') {
    const values = new Float32Array(plan.count);
    gatherF32(src, plan, values);
    toInt32(values, dst.data as Int32Array);
  } else {
    gatherRounded(src, plan, dst.data as Uint16Array, dst.dtype);
  }
}

/** dst[view(i)] += src[i], in float32, rounding to dst's dtype. The view must not map two elements to one place. */
function addInto(ctx: CpuContext, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  const d = dst as CpuBuffer;
  const plan = planViews(view.shape, [view]);
  const s = src as CpuBuffer;
  if (plan.count === 0) return;
  const { rows, rowLen } = plan;
  const st = plan.step[0];
  // Long contiguous rows: gathered into WebAssembly, added in SIMD and put back, on this thread,
  // measured 2-3x faster than the JavaScript loop (and so than that loop on two threads).
  const w = st === 1 && rowLen >= MIN_ROW ? elementwiseWasm() : null;
  if (w === null && d.dtype === 'float32' && s.dtype === 'float32') {
    // Rows write disjoint elements (no two view elements share a place), so they may run on any thread.
    const data = d.data as Float32Array;
    const values = s.data as Float32Array;
    for (const part of partsOf(plan)) {
      const args = [data, values.subarray(part.at), part.rowLen, st, part.walk];
      forRows(ctx, addRows32, part.rows, part.rows * part.rowLen, args, [0]);
    }
    return;
  }
  if (w !== null) {
    addIntoWasm(w, d, s, plan);
    return;
  }
  const starts = plan.rowStart[0];
  if (d.dtype === 'float32') {
    const data = d.data as Float32Array;
    for (let r = 0; r < rows; r++) {
      const k = r * rowLen;
      const values = readF32(s, k, rowLen, 0);
      const vi = at(s, k);
      const p = starts[r] >>> 0;
      for (let j = 0; j < rowLen; j++) data[p + j * st] += values[vi + j];
    }
    return;
  }
  // 16-bit dst: decode, add in float32, round back, one element at a time.
  const data = d.data as Uint16Array;
  const table = decodeTable(d.dtype as 'float16' | 'bfloat16');
  const bf16 = d.dtype === 'bfloat16';
  for (let r = 0; r < rows; r++) {
    const k = r * rowLen;
    const values = readF32(s, k, rowLen, 0);
    const vi = at(s, k);
    const p = starts[r] >>> 0;
    if (bf16) {
      for (let j = 0; j < rowLen; j++) {
        const q = p + j * st;
        data[q] = toBf16(table[data[q]] + values[vi + j]);
      }
    } else {
      for (let j = 0; j < rowLen; j++) {
        const q = p + j * st;
        data[q] = toF16(table[data[q]] + values[vi + j]);
      }
    }
  }
}

/** The data movement kernels; their arguments are checked in core (kernelChecks), int32 conversions here. */
export const copyKernels = { fill, copy, addInto } satisfies KernelFamily<CpuContext>;

/**
 * The walk of view v's rows for a row kernel: [offset, n₁, s₁, n₂, s₂, …], the outer dimensions
 * innermost first with their strides (a few numbers, whatever the row count).
 */
function walkOf(plan: ViewPlan, v: number): Float64Array {
  const { outer } = plan;
  const strides = plan.outerStrides[v];
  const walk = new Float64Array(1 + 2 * outer.length);
  walk[0] = plan.offset[v];
  for (let d = 0; d < outer.length; d++) {
    walk[1 + 2 * d] = outer[d];
    walk[2 + 2 * d] = strides[d];
  }
  return walk;
}

/** dst[i] = src[view(i)] between arrays of the same type (raw bits), as a row kernel. */
function gatherRaw(ctx: CpuContext, src: Raw, plan: ViewPlan, dst: Raw): void {
  const st = plan.step[0];
  const k = 8 / src.BYTES_PER_ELEMENT;
  if (st === 1 && wideRows(plan, k) && src.byteOffset % 8 === 0 && dst.byteOffset % 8 === 0) {
    const s = new Float64Array(src.buffer, src.byteOffset, Math.floor(src.length / k));
    const d = new Float64Array(dst.buffer, dst.byteOffset, Math.floor(dst.length / k));
    for (const { rows, rowLen, walk, at } of partsOf(plan)) {
      const words = walk.map((v, i) => (i % 2 === 1 ? v : v / k));
      forRows(ctx, gatherRows64, rows, rows * rowLen, [s, d.subarray(at / k), rowLen / k, words], [1]);
    }
    return;
  }
  if (src instanceof Uint16Array) {
    for (const { rows, rowLen, walk, at } of partsOf(plan)) {
      forRows(ctx, gatherRows16, rows, rows * rowLen, [src, (dst as Uint16Array).subarray(at), rowLen, st, walk], [1]);
    }
    return;
  }
  // Float32Array element copies would canonicalise NaN payloads: move float32 as int32 bits.
  const s = src instanceof Float32Array ? new Int32Array(src.buffer, src.byteOffset, src.length) : src;
  const d = dst instanceof Float32Array ? new Int32Array(dst.buffer, dst.byteOffset, dst.length) : (dst as Int32Array);
  for (const { rows, rowLen, walk, at } of partsOf(plan)) {
    forRows(ctx, gatherRows32, rows, rows * rowLen, [s, d.subarray(at), rowLen, st, walk], [1]);
  }
}

/** Elements a single long row is cut into (so that it splits across threads like a plan of many rows). */
const PIECE = 8192;

/** A range of the rows of view 0: `rows` rows of `rowLen` walked by `walk`, from element `at` of the view's order. */
interface Part {
  rows: number;
  rowLen: number;
  walk: Float64Array;
  at: number;
}

/**
 * The rows of view 0 for a row kernel: the plan's own, or, for a plan of a single row of at
 * least 2·PIECE elements, pieces of PIECE elements (a multiple of every word size) and the rest.
 */
function partsOf(plan: ViewPlan): Part[] {
  const walk = walkOf(plan, 0);
  const { rows, rowLen } = plan;
  if (rows !== 1 || rowLen < 2 * PIECE) return [{ rows, rowLen, walk, at: 0 }];
  const m = Math.floor(rowLen / PIECE);
  const st = plan.step[0];
  const parts: Part[] = [{ rows: m, rowLen: PIECE, walk: Float64Array.of(walk[0], m, PIECE * st), at: 0 }];
  const rest = rowLen - m * PIECE;
  if (rest > 0) parts.push({ rows: 1, rowLen: rest, walk: Float64Array.of(walk[0] + m * PIECE * st), at: m * PIECE });
  return parts;
}

/** Whether every row of view 0 (step 1) starts and ends on a multiple of k elements, so it moves as float64 words. */
function wideRows(plan: ViewPlan, k: number): boolean {
  return plan.rowLen % k === 0 && plan.offset[0] % k === 0 && plan.outerStrides[0].every((s) => s % k === 0);
}

/**
 * Row kernel: contiguous rows moved as float64 words, k elements of 32 or 16 bits at a time
 * (`rowLen` and `walk` counted in words; gatherRaw checks the alignment): half or a quarter of
 * the typed-array accesses, which V8 checks one by one. A float64 load and store move any bit
 * pattern unchanged, NaN payloads included (the tests copy every NaN class).
 */
export function gatherRows64(src: Float64Array, dst: Float64Array, rowLen: number, walk: Float64Array, r0: number, r1: number): void {
  const levels = (walk.length - 1) >> 1;
  const idx = new Float64Array(levels);
  let p = walk[0];
  for (let d = 0, q = r0; d < levels; d++) {
    const i = q % walk[1 + 2 * d];
    idx[d] = i;
    p += i * walk[2 + 2 * d];
    q = (q - i) / walk[1 + 2 * d];
  }
  for (let r = r0, o = r0 * rowLen; r < r1; r++, o += rowLen) {
    const a = p >>> 0;
    if (rowLen >= 128) {
      dst.set(src.subarray(a, a + rowLen), o);
    } else {
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const b = a + j;
        const c = o + j;
        dst[c] = src[b];
        dst[c + 1] = src[b + 1];
        dst[c + 2] = src[b + 2];
        dst[c + 3] = src[b + 3];
        dst[c + 4] = src[b + 4];
        dst[c + 5] = src[b + 5];
        dst[c + 6] = src[b + 6];
        dst[c + 7] = src[b + 7];
      }
      for (; j < rowLen; j++) dst[o + j] = src[a + j];
    }
    for (let d = 0; d < levels; d++) {
      p += walk[2 + 2 * d];
      if (++idx[d] < walk[1 + 2 * d]) break;
      p -= walk[2 + 2 * d] * walk[1 + 2 * d];
      idx[d] = 0;
    }
  }
}

/**
 * Row kernel: dst[r·rowLen + j] = src[start(r) + j·step] for rows [r0, r1), start(r) following
 * `walk` (walkOf). Contiguous rows of at least 128 elements move by `set`, shorter ones by a loop
 * unrolled by 8. gatherRows16 is the same code on 16-bit arrays (one element type per function
 * keeps V8's element accesses monomorphic).
 */
export function gatherRows32(
  src: Int32Array,
  dst: Int32Array,
  rowLen: number,
  step: number,
  walk: Float64Array,
  r0: number,
  r1: number,
): void {
  const levels = (walk.length - 1) >> 1;
  const idx = new Float64Array(levels);
  let p = walk[0];
  for (let d = 0, q = r0; d < levels; d++) {
    const i = q % walk[1 + 2 * d];
    idx[d] = i;
    p += i * walk[2 + 2 * d];
    q = (q - i) / walk[1 + 2 * d];
  }
  for (let r = r0, o = r0 * rowLen; r < r1; r++, o += rowLen) {
    const a = p >>> 0;
    if (step === 1 && rowLen >= 128) {
      dst.set(src.subarray(a, a + rowLen), o);
    } else if (step === 1) {
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const b = a + j;
        const c = o + j;
        dst[c] = src[b];
        dst[c + 1] = src[b + 1];
        dst[c + 2] = src[b + 2];
        dst[c + 3] = src[b + 3];
        dst[c + 4] = src[b + 4];
        dst[c + 5] = src[b + 5];
        dst[c + 6] = src[b + 6];
        dst[c + 7] = src[b + 7];
      }
      for (; j < rowLen; j++) dst[o + j] = src[a + j];
    } else {
      for (let j = 0; j < rowLen; j++) dst[o + j] = src[a + j * step];
    }
    for (let d = 0; d < levels; d++) {
      p += walk[2 + 2 * d];
      if (++idx[d] < walk[1 + 2 * d]) break;
      p -= walk[2 + 2 * d] * walk[1 + 2 * d];
      idx[d] = 0;
    }
  }
}

/** gatherRows32 on 16-bit arrays (float16 / bfloat16 bits). */
export function gatherRows16(
  src: Uint16Array,
  dst: Uint16Array,
  rowLen: number,
  step: number,
  walk: Float64Array,
  r0: number,
  r1: number,
): void {
  const levels = (walk.length - 1) >> 1;
  const idx = new Float64Array(levels);
  let p = walk[0];
  for (let d = 0, q = r0; d < levels; d++) {
    const i = q % walk[1 + 2 * d];
    idx[d] = i;
    p += i * walk[2 + 2 * d];
    q = (q - i) / walk[1 + 2 * d];
  }
  for (let r = r0, o = r0 * rowLen; r < r1; r++, o += rowLen) {
    const a = p >>> 0;
    if (step === 1 && rowLen >= 128) {
      dst.set(src.subarray(a, a + rowLen), o);
    } else if (step === 1) {
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const b = a + j;
        const c = o + j;
        dst[c] = src[b];
        dst[c + 1] = src[b + 1];
        dst[c + 2] = src[b + 2];
        dst[c + 3] = src[b + 3];
        dst[c + 4] = src[b + 4];
        dst[c + 5] = src[b + 5];
        dst[c + 6] = src[b + 6];
        dst[c + 7] = src[b + 7];
      }
      for (; j < rowLen; j++) dst[o + j] = src[a + j];
    } else {
      for (let j = 0; j < rowLen; j++) dst[o + j] = src[a + j * step];
    }
    for (let d = 0; d < levels; d++) {
      p += walk[2 + 2 * d];
      if (++idx[d] < walk[1 + 2 * d]) break;
      p -= walk[2 + 2 * d] * walk[1 + 2 * d];
      idx[d] = 0;
    }
  }
}

/** Row kernel: dst[start(r) + j·step] += src[r·rowLen + j] in float32 for rows [r0, r1) (walk as in gatherRows32). */
export function addRows32(
  dst: Float32Array,
  src: Float32Array,
  rowLen: number,
  step: number,
  walk: Float64Array,
  r0: number,
  r1: number,
): void {
  const levels = (walk.length - 1) >> 1;
  const idx = new Float64Array(levels);
  let p = walk[0];
  for (let d = 0, q = r0; d < levels; d++) {
    const i = q % walk[1 + 2 * d];
    idx[d] = i;
    p += i * walk[2 + 2 * d];
    q = (q - i) / walk[1 + 2 * d];
  }
  for (let r = r0, k = r0 * rowLen; r < r1; r++, k += rowLen) {
    const a = p >>> 0;
    // A float32 sum rounded from the double sum of two float32 values is the float32 sum.
    if (step === 1) {
      // Eight sums before their stores: V8 checks the arrays once for a run of loads.
      let j = 0;
      for (; j + 8 <= rowLen; j += 8) {
        const b = a + j;
        const c = k + j;
        const s0 = dst[b] + src[c];
        const s1 = dst[b + 1] + src[c + 1];
        const s2 = dst[b + 2] + src[c + 2];
        const s3 = dst[b + 3] + src[c + 3];
        const s4 = dst[b + 4] + src[c + 4];
        const s5 = dst[b + 5] + src[c + 5];
        const s6 = dst[b + 6] + src[c + 6];
        const s7 = dst[b + 7] + src[c + 7];
        dst[b] = s0;
        dst[b + 1] = s1;
        dst[b + 2] = s2;
        dst[b + 3] = s3;
        dst[b + 4] = s4;
        dst[b + 5] = s5;
        dst[b + 6] = s6;
        dst[b + 7] = s7;
      }
      for (; j < rowLen; j++) dst[a + j] += src[k + j];
    } else {
      for (let j = 0; j < rowLen; j++) dst[a + j * step] += src[k + j];
    }
    for (let d = 0; d < levels; d++) {
      p += walk[2 + 2 * d];
      if (++idx[d] < walk[1 + 2 * d]) break;
      p -= walk[2 + 2 * d] * walk[1 + 2 * d];
      idx[d] = 0;
    }
  }
}

/** dst[i] = src[view(i)] as float32 (src of another dtype than float32: decoded or converted). */
function gatherF32(src: CpuBuffer, plan: ViewPlan, dst: Float32Array): void {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  if (st === 1) {
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) decodeInto(src, starts[r] >>> 0, rowLen, dst, o);
  } else if (src.dtype === 'float32' || src.dtype === 'int32') {
    const data = src.data as Float32Array | Int32Array;
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
      const p = starts[r] >>> 0;
      for (let j = 0; j < rowLen; j++) dst[o + j] = data[p + j * st];
    }
  } else {
    const table = decodeTable(src.dtype);
    const data = src.data as Uint16Array;
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
      const p = starts[r] >>> 0;
      for (let j = 0; j < rowLen; j++) dst[o + j] = table[data[p + j * st]];
    }
  }
}

/** dst[i] = src[view(i)] rounded to float16 / bfloat16 bits (src of another dtype). */
function gatherRounded(src: CpuBuffer, plan: ViewPlan, dst: Uint16Array, dtype: 'float16' | 'bfloat16'): void {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  if (st === 1 && src.dtype === 'float32') {
    const data = src.data as Float32Array;
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) roundInto(dst, dtype, o, data, rowLen, starts[r] >>> 0);
    return;
  }
  const round = dtype === 'bfloat16' ? toBf16 : toF16;
  if (src.dtype === 'float32' || src.dtype === 'int32') {
    const data = src.data as Float32Array | Int32Array;
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
      const p = starts[r] >>> 0;
      for (let j = 0; j < rowLen; j++) dst[o + j] = round(data[p + j * st]);
    }
  } else {
    const table = decodeTable(src.dtype);
    const data = src.data as Uint16Array;
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
      const p = starts[r] >>> 0;
      for (let j = 0; j < rowLen; j++) dst[o + j] = round(table[data[p + j * st]]);
    }
  }
}

function toInt32(values: Float32Array, out: Int32Array): void {
  for (let i = 0; i < values.length; i++) {
    const v = Math.trunc(values[i]);
    if (!(v >= -2147483648 && v <= 2147483647)) {
      throw new Error(`copy: element ${i} has value ${values[i]}, which cannot be converted to int32`);
    }
    out[i] = v;
  }
}
