/**
 * Data movement: fill, strided copy with dtype conversion, and its backward (addInto).
 *
 * Conversions: float → float rounds to nearest even; int32 → float is exact up to 2²⁴ and rounds
 * beyond; float → int32 truncates toward zero, and a NaN, ±Inf or out-of-range value is an error.
 * A copy between buffers of the same dtype moves raw bits (NaN payloads included).
 */
import type { DeviceBuffer, View } from '@peft/core';
import { arg, type CpuBuffer, type CpuContext } from '../buffer.js';
import { decodeTable, loadF32, roundInto, storeF32 } from '../storage.js';
import { planViews, type ViewPlan } from '../view.js';

type Raw = Float32Array | Uint16Array | Int32Array;

export function fill(ctx: CpuContext, out: DeviceBuffer, value: number): void {
  const o = arg(ctx, 'fill', 'out', out, 0, 'any');
  if (o.dtype === 'int32') {
    if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
      throw new Error(`fill: value ${value} cannot be stored in an int32 buffer: use an integer in [-2^31, 2^31)`);
    }
    (o.data as Int32Array).fill(value);
  } else if (o.dtype === 'float32') {
    (o.data as Float32Array).fill(value);
  } else {
    const one = new Float32Array([value]);
    const bits = new Uint16Array(1);
    roundInto(bits, o.dtype, 0, one);
    (o.data as Uint16Array).fill(bits[0]);
  }
}

/** out[i] = x[view(i)] (raw bits for equal dtypes; through float32 otherwise). */
export function copy(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  const src = arg(ctx, 'copy', 'x', x, 0, 'any');
  const plan = planViews('copy', view.shape, [view], ['x'], [src.size]);
  const dst = arg(ctx, 'copy', 'out', out, plan.count, 'any');
  if (dst === src) throw new Error('copy: out and x are the same buffer: copy into a separate buffer');
  if (dst.dtype === src.dtype) {
    gather(src.data, null, plan, dst.data);
  } else if (dst.dtype === 'float32') {
    gather(src.data, src.dtype === 'float16' || src.dtype === 'bfloat16' ? decodeTable(src.dtype) : null, plan, dst.data);
  } else {
    const values = gatherF32(src, plan);
    if (dst.dtype === 'int32') toInt32(values, dst.data as Int32Array);
    else storeF32(dst, values);
  }
}

/** dst[view(i)] += src[i], in float32, rounding to dst's dtype. The view must not map two elements to one place. */
export function addInto(ctx: CpuContext, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  const d = arg(ctx, 'addInto', 'dst', dst, 0, 'float');
  const plan = planViews('addInto', view.shape, [view], ['dst'], [d.size]);
  const s = arg(ctx, 'addInto', 'src', src, plan.count, 'float');
  if (d === s) throw new Error('addInto: dst and src are the same buffer');
  const values = loadF32(s, 0, plan.count);
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  if (d.dtype === 'float32') {
    const data = d.data as Float32Array;
    let i = 0;
    for (let r = 0; r < rows; r++) {
      let p = starts[r];
      for (let j = 0; j < rowLen; j++, p += st) data[p] += values[i++];
    }
    return;
  }
  // 16-bit dst: gather the current values, add in float32, round, scatter the bits back.
  const sum = gatherF32(d, plan);
  for (let i = 0; i < sum.length; i++) sum[i] += values[i];
  const bits = new Uint16Array(sum.length);
  roundInto(bits, d.dtype as 'float16' | 'bfloat16', 0, sum);
  const data = d.data as Uint16Array;
  let i = 0;
  for (let r = 0; r < rows; r++) {
    let p = starts[r];
    for (let j = 0; j < rowLen; j++, p += st) data[p] = bits[i++];
  }
}

/** The element values of view 0 of `plan` over `src`, as float32. */
function gatherF32(src: CpuBuffer, plan: ViewPlan): Float32Array {
  const out = new Float32Array(plan.count);
  gather(src.data, src.dtype === 'float16' || src.dtype === 'bfloat16' ? decodeTable(src.dtype) : null, plan, out);
  return out;
}

/** dst[i] = src[view(i)], or table[src[view(i)]] when a decode table is given. */
function gather(src: Raw, table: Float32Array | null, plan: ViewPlan, dst: Raw): void {
  const { rows, rowLen } = plan;
  const starts = plan.rowStart[0];
  const st = plan.step[0];
  let o = 0;
  if (table === null) {
    if (st === 1) {
      for (let r = 0; r < rows; r++, o += rowLen) {
        const p = starts[r];
        if (src.constructor === dst.constructor) (dst as Float32Array).set((src as Float32Array).subarray(p, p + rowLen), o);
        else for (let j = 0; j < rowLen; j++) dst[o + j] = src[p + j];
      }
      return;
    }
    for (let r = 0; r < rows; r++) {
      let p = starts[r];
      for (let j = 0; j < rowLen; j++, p += st) dst[o++] = src[p];
    }
    return;
  }
  for (let r = 0; r < rows; r++) {
    let p = starts[r];
    for (let j = 0; j < rowLen; j++, p += st) dst[o++] = table[src[p]];
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
