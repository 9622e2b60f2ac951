/**
 * Data movement: fill, strided copy with dtype conversion, and its backward (addInto).
 *
 * Conversions: float → float rounds to nearest even; int32 → float rounds beyond 2²⁴; float →
 * int32 truncates toward zero (WGSL saturates values out of range; the GPU cannot throw as the CPU
 * backend does). A copy between buffers of the same dtype moves raw bits (NaN payloads included).
 */
import { type DeviceBuffer, floatToBf16, floatToF16, type View } from '@peft/core';
import { arg } from '../buffer.js';
import { type Ctx, map, planStrided, stridedIndex, WG } from './common.js';

export function fill(ctx: Ctx, out: DeviceBuffer, value: number): void {
  const o = arg(ctx.owner, 'fill', 'out', out, 0, 'any');
  let word: number;
  if (o.dtype === 'int32') {
    if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
      throw new Error(`fill: value ${value} cannot be stored in an int32 buffer: use an integer in [-2^31, 2^31)`);
    }
    word = value >>> 0;
  } else if (o.dtype === 'float32') {
    word = new Uint32Array(new Float32Array([value]).buffer)[0]!;
  } else {
    const bits = o.dtype === 'float16' ? floatToF16(value) : floatToBf16(value);
    word = (bits | (bits << 16)) >>> 0;
  }
  // Whole words: a 16-bit buffer of odd size also fills its padding half, which nothing reads.
  map(ctx, 'fill', o.byteLength / 4, [{ name: 'out', buf: o, access: 'write', as: 'float32' }], 'stw_out(i, P.word);', [
    ['word', 'u32', word],
  ]);
}

/** out[i] = x[view(i)] (raw bits for equal dtypes; through float32 otherwise). */
export function copy(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  const src = arg(ctx.owner, 'copy', 'x', x, 0, 'any');
  const plan = planStrided('copy', view.shape, [view], ['x'], [src.size]);
  const dst = arg(ctx.owner, 'copy', 'out', out, plan.count, 'any');
  if (dst === src) throw new Error('copy: out and x are the same buffer: copy into a separate buffer');
  const ix = stridedIndex(plan);
  let store: string;
  if (dst.dtype === src.dtype) store = 'stw_out(i, raw_x(idx0));';
  else if (dst.dtype === 'int32') store = 'st_out(i, i32(trunc(ld_x(idx0))));';
  else if (src.dtype === 'int32') store = 'st_out(i, f32(ld_x(idx0)));';
  else store = 'st_out(i, ld_x(idx0));';
  ctx.rt.launch({
    kernel: 'copy',
    params: [['n', 'u32', plan.count], ...ix.params],
    array: ix.array,
    bindings: [
      { name: 'out', buf: dst, access: 'write' },
      { name: 'x', buf: src, access: 'read' },
    ],
    code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * ${WG}u + lid;
  if (i >= P.n) { return; }
  ${ix.code}
  ${store}
}`,
    groups: Math.ceil(plan.count / WG),
  });
}

/** dst[view(i)] += src[i], in float32, rounding to dst's dtype. The view must not map two elements to one place. */
export function addInto(ctx: Ctx, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  const d = arg(ctx.owner, 'addInto', 'dst', dst, 0, 'float');
  const plan = planStrided('addInto', view.shape, [view], ['dst'], [d.size]);
  const s = arg(ctx.owner, 'addInto', 'src', src, plan.count, 'float');
  if (d === s) throw new Error('addInto: dst and src are the same buffer');
  const ix = stridedIndex(plan);
  ctx.rt.launch({
    kernel: 'addInto',
    params: [['n', 'u32', plan.count], ...ix.params],
    array: ix.array,
    bindings: [
      { name: 'dst', buf: d, access: 'readwrite' },
      { name: 'src', buf: s, access: 'read' },
    ],
    code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * ${WG}u + lid;
  if (i >= P.n) { return; }
  ${ix.code}
  st_dst(idx0, ld_dst(idx0) + ld_src(i));
}`,
    groups: Math.ceil(plan.count / WG),
  });
}
