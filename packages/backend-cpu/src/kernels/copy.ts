/**
 * Data movement: fill, strided copy with dtype conversion, and its backward (addInto). addInto
 * over rows of step 1 and at least MIN_ROW elements adds in WebAssembly SIMD where the engine has
 * it (./elementwise-wasm.ts), with the same float32 sums; the loops here are its meaning.
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
import { at, decodeInto, decodeTable, readF32, roundInto, toBf16, toF16 } from '../storage.js';
import { planViews, type ViewPlan } from '../view.js';
import { addIntoWasm, elementwiseWasm, MIN_ROW } from './elementwise-wasm.js';

type Raw = Float32Array | Uint16Array | Int32Array;

function fill(_ctx: CpuContext, out: DeviceBuffer, value: number): void {
  const o = out as CpuBuffer;
  if (o.dtype === 'int32') {
    (o.data as Int32Array).fill(value);
  } else if (o.dtype === 'float32') {
    (o.data as Float32Array).fill(value);
  } else {
    (o.data as Uint16Array).fill(o.dtype === 'bfloat16' ? toBf16(value) : toF16(value));
  }
}

/** out[i] = x[view(i)] (raw bits for equal dtypes; through float32 otherwise). */
function copy(_ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  const src = x as CpuBuffer;
  const plan = planViews(view.shape, [view]);
  const dst = out as CpuBuffer;
  if (plan.count === 0) return;
  if (dst.dtype === src.dtype) {
    gatherRaw(src.data, plan, dst.data);
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
function addInto(_ctx: CpuContext, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  const d = dst as CpuBuffer;
  const plan = planViews(view.shape, [view]);
  const s = src as CpuBuffer;
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  const w = st === 1 && rowLen >= MIN_ROW ? elementwiseWasm() : null;
  if (w !== null) {
    addIntoWasm(w, d, s, plan);
    return;
  }
  if (d.dtype === 'float32') {
    const data = d.data as Float32Array;
    for (let r = 0; r < rows; r++) {
      const k = r * rowLen;
      const values = readF32(s, k, rowLen, 0);
      const vi = at(s, k);
      const p = starts[r] >>> 0;
      if (st === 1) for (let j = 0; j < rowLen; j++) data[p + j] += values[vi + j];
      else for (let j = 0; j < rowLen; j++) data[p + j * st] += values[vi + j];
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

/** Rows at most this long are copied by a loop rather than `TypedArray.set` (which allocates a view per row). */
const SHORT_ROW = 48;

/** dst[i] = src[view(i)] between arrays of the same type (raw bits). */
function gatherRaw(src: Raw, plan: ViewPlan, dst: Raw): void {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  if (st === 1 && rowLen > SHORT_ROW) {
    for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
      const p = starts[r] >>> 0;
      (dst as Float32Array).set((src as Float32Array).subarray(p, p + rowLen), o);
    }
    return;
  }
  // Float32Array element copies would canonicalise NaN payloads: move float32 as int32 bits.
  const s = src instanceof Float32Array ? new Int32Array(src.buffer, src.byteOffset, src.length) : src;
  const d = dst instanceof Float32Array ? new Int32Array(dst.buffer, dst.byteOffset, dst.length) : dst;
  if (s instanceof Int32Array) stridedCopy32(s, plan, d as Int32Array);
  else stridedCopy16(s as Uint16Array, plan, d as Uint16Array);
}

function stridedCopy32(src: Int32Array, plan: ViewPlan, dst: Int32Array): void {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
    const p = starts[r] >>> 0;
    for (let j = 0; j < rowLen; j++) dst[o + j] = src[p + j * st];
  }
}

function stridedCopy16(src: Uint16Array, plan: ViewPlan, dst: Uint16Array): void {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  for (let r = 0, o = 0; r < rows; r++, o += rowLen) {
    const p = starts[r] >>> 0;
    for (let j = 0; j < rowLen; j++) dst[o + j] = src[p + j * st];
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
