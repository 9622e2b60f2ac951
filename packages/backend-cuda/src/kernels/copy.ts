/**
 * Host side of kernels/copy.cu: fill, strided copies with dtype conversion, and addInto (dst +=
 * a view of src). Same-dtype contiguous copies are one cuMemcpyDtoD; fills are memsets.
 */
import type { DeviceBuffer, DType, View } from '@peft/core';
import { bytesPerElement, encode } from '@peft/core';
import { arg, type CudaBuffer } from '../buffer.js';
import { DTYPE_CODE, isContiguous, type KernelView, simplifyView } from '../kernels.js';
import { type Ctx, checkView, grid, THREADS } from './common.js';

export function fill(ctx: Ctx, out: DeviceBuffer, value: number): void {
  const o = arg(ctx.owner, 'fill', 'out', out, 0, 'any');
  if (o.dtype === 'int32') {
    if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
      throw new Error(`fill: value ${value} cannot be stored in an int32 buffer: use an integer in [-2^31, 2^31)`);
    }
    ctx.rt.memsetD32(o.ptr, value, o.size);
  } else if (o.dtype === 'float32') {
    ctx.rt.memsetD32(o.ptr, new Uint32Array(new Float32Array([value]).buffer)[0], o.size);
  } else {
    ctx.rt.memsetD16(o.ptr, (encode([value], o.dtype) as Uint16Array)[0], o.size);
  }
}

export function copy(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  const src = arg(ctx.owner, 'copy', 'x', x, 0, 'any');
  const n = checkView('copy', view, 'x', src.size);
  const dst = arg(ctx.owner, 'copy', 'out', out, n, 'any');
  if (dst === src) throw new Error('copy: out and x are the same buffer: copy into a separate buffer');
  if (n === 0) return;
  const v = simplifyView(view);
  if (dst.dtype === src.dtype) {
    const bpe = bytesPerElement(src.dtype);
    if (isContiguous(v)) ctx.rt.copyDtoD(dst.ptr, src.ptr + v.offset * bpe, n * bpe);
    else ctx.rt.launch(bpe === 4 ? 'copy_bits32' : 'copy_bits16', [grid(ctx, n)], [THREADS], 0, [dst.ptr, src.ptr, v, n]);
    return;
  }
  ctx.rt.launch('copy_convert', [grid(ctx, n)], [THREADS], 0, [dst.ptr, DTYPE_CODE[dst.dtype], src.ptr, DTYPE_CODE[src.dtype], v, n]);
}

export function addInto(ctx: Ctx, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  const d = arg(ctx.owner, 'addInto', 'dst', dst, 0, 'float');
  const n = checkView('addInto', view, 'dst', d.size);
  const s = arg(ctx.owner, 'addInto', 'src', src, n, 'float');
  if (d === s) throw new Error('addInto: dst and src are the same buffer');
  if (n === 0) return;
  ctx.rt.launch('add_into', [grid(ctx, n)], [THREADS], 0, [d.ptr, DTYPE_CODE[d.dtype], s.ptr, DTYPE_CODE[s.dtype], simplifyView(view), n]);
}

/** Contiguous dtype conversion of `count` elements, device address to device address. */
export function convert(ctx: Ctx, out: number, dtOut: DType, x: number, dtX: DType, count: number): void {
  const v: KernelView = { shape: [count], strides: [1], offset: 0 };
  ctx.rt.launch('copy_convert', [grid(ctx, count)], [THREADS], 0, [out, DTYPE_CODE[dtOut], x, DTYPE_CODE[dtX], v, count]);
}

/** Zeros `count` elements of `buf` from element `at`. */
export function fillRange(ctx: Ctx, buf: CudaBuffer, at: number, count: number): void {
  const bpe = bytesPerElement(buf.dtype);
  if (bpe === 4) ctx.rt.memsetD32(buf.ptr + at * 4, 0, count);
  else ctx.rt.memsetD16(buf.ptr + at * 2, 0, count);
}
