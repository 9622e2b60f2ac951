/** Host side of kernels/reduce.cu: sum/max over one axis of [outer, reduce, inner], and argmax over rows. */
import type { DeviceBuffer, KernelFamily, ReduceOp } from '@peft/core';
import { bytesPerElement } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, THREADS, temp } from './common.js';

function reduce(ctx: Ctx, op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, reduce: number, inner: number): void {
  const o = out as CudaBuffer;
  const xb = x as CudaBuffer;
  if (outer * inner === 0) return;
  const code = op === 'sum' ? 0 : 1;
  const t = o === xb ? temp(ctx, outer * inner * bytesPerElement(o.dtype)) : null;
  const dst = t ? t.ptr : o.ptr;
  if (inner === 1) {
    const threads = Math.min(THREADS, Math.max(32, Math.ceil(reduce / 32) * 32));
    ctx.rt.launch('reduce_rows', [outer], [threads], 0, [code, dst, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], reduce]);
  } else {
    ctx.rt.launch('reduce_axis', [outer * Math.ceil(inner / 32)], [32, 8], 0, [
      code,
      dst,
      DTYPE_CODE[o.dtype],
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      outer,
      reduce,
      inner,
    ]);
  }
  if (t) {
    ctx.rt.copyDtoD(o.ptr, t.ptr, outer * inner * bytesPerElement(o.dtype));
    ctx.rt.release(t);
  }
}

function argmax(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
  const o = out as CudaBuffer;
  const xb = x as CudaBuffer;
  if (rows === 0) return;
  const threads = Math.min(THREADS, Math.max(32, Math.ceil(cols / 32) * 32));
  ctx.rt.launch('argmax_rows', [rows], [threads], 0, [o.ptr, xb.ptr, DTYPE_CODE[xb.dtype], cols]);
}

/** The reduction kernels; their arguments are checked in core (kernelChecks). */
export const reduceKernels = { reduce, argmax } satisfies KernelFamily<Ctx>;
