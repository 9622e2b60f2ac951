/**
 * Data movement: fill, strided copy with dtype conversion, and its backward (addInto).
 *
 * Conversions: float → float rounds to nearest even; int32 → float rounds beyond 2²⁴; float →
 * int32 truncates toward zero (WGSL saturates values out of range; the GPU cannot throw as the CPU
 * backend does). A copy between buffers of the same dtype moves raw bits (NaN payloads included).
 */
import { floatToBf16, floatToF16, type KernelFamily, type View } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map, mapStrided } from './common.js';

/** fill, copy and addInto; their arguments are checked in core (kernelChecks). */
export const copyKernels = {
  fill(ctx, out, value) {
    const o = out as WebGpuBuffer;
    let word: number;
    if (o.dtype === 'int32') word = value >>> 0;
    else if (o.dtype === 'float32') word = new Uint32Array(new Float32Array([value]).buffer)[0]!;
    else {
      const bits = o.dtype === 'float16' ? floatToF16(value) : floatToBf16(value);
      word = (bits | (bits << 16)) >>> 0;
    }
    // Whole words: a 16-bit buffer of odd size also fills its padding half, which nothing reads.
    map(ctx, 'fill', o.byteLength / 4, [{ name: 'out', buf: o, access: 'write', as: 'float32' }], 'stw_out(i, P.word);', [
      ['word', 'u32', word],
    ]);
  },

  copy(ctx, out, x, view) {
    copyView(ctx, out as WebGpuBuffer, x as WebGpuBuffer, view);
  },

  /** dst[view(i)] += src[i], in float32, rounding to dst's dtype. The view must not map two elements to one place. */
  addInto(ctx, dst, src, view) {
    const bindings = [
      { name: 'dst', buf: dst as WebGpuBuffer, access: 'readwrite' },
      { name: 'src', buf: src as WebGpuBuffer, access: 'read' },
    ] as const;
    mapStrided(ctx, 'addInto', view.shape, [view], bindings, 'st_dst(idx0, ld_dst(idx0) + ld_src(i));');
  },
} satisfies KernelFamily<Ctx>;

/** out[i] = x[view(i)] (raw bits for equal dtypes; through float32 otherwise); the embedding backward uses it on its temporary. */
export function copyView(ctx: Ctx, out: WebGpuBuffer, x: WebGpuBuffer, view: View): void {
  let store: string;
  if (out.dtype === x.dtype) store = 'stw_out(i, raw_x(idx0));';
  else if (out.dtype === 'int32') store = 'st_out(i, i32(trunc(ld_x(idx0))));';
  else if (x.dtype === 'int32') store = 'st_out(i, f32(ld_x(idx0)));';
  else store = 'st_out(i, ld_x(idx0));';
  const bindings = [
    { name: 'out', buf: out, access: 'write' },
    { name: 'x', buf: x, access: 'read' },
  ] as const;
  mapStrided(ctx, 'copy', view.shape, [view], bindings, store);
}
