/**
 * Host side of kernels/copy.cu: fill, strided copies with dtype conversion, and addInto (dst +=
 * a view of src). Same-dtype contiguous copies are one cuMemcpyDtoD; fills are memsets.
 */
import type { DeviceBuffer, DType, KernelFamily, View } from '@peft/core';
import { bytesPerElement, encode, shapeSize } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE, isContiguous, type KernelView, simplifyView } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

/** Sets every element of `out` to `value` (core checked that an int32 buffer gets an int32 value). */
export function fill(ctx: Ctx, out: DeviceBuffer, value: number): void {
  const o = out as CudaBuffer;
  if (o.dtype === 'int32') {
    ctx.rt.memsetD32(o.ptr, value, o.size);
  } else if (o.dtype === 'float32') {
    ctx.rt.memsetD32(o.ptr, new Uint32Array(new Float32Array([value]).buffer)[0], o.size);
  } else {
    ctx.rt.memsetD16(o.ptr, (encode([value], o.dtype) as Uint16Array)[0], o.size);
  }
}

function copy(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, view: View): void {
  const src = x as CudaBuffer;
  const dst = out as CudaBuffer;
  const n = shapeSize(view.shape);
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

function addInto(ctx: Ctx, dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
  const d = dst as CudaBuffer;
  const s = src as CudaBuffer;
  const n = shapeSize(view.shape);
  if (n === 0) return;
  ctx.rt.launch('add_into', [grid(ctx, n)], [THREADS], 0, [d.ptr, DTYPE_CODE[d.dtype], s.ptr, DTYPE_CODE[s.dtype], simplifyView(view), n]);
}

/** The data movement kernels; their arguments are checked in core (kernelChecks). */
export const copyKernels = { fill, copy, addInto } satisfies KernelFamily<Ctx>;

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
