/** Host side of kernels/adamw.cu: the fused AdamW step (bias corrections computed here, per step). */
import type { AdamWParams, DeviceBuffer, KernelFamily } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

function adamw(
  ctx: Ctx,
  param: DeviceBuffer,
  grad: DeviceBuffer,
  m: DeviceBuffer,
  v: DeviceBuffer,
  p: AdamWParams,
  scalars?: DeviceBuffer | null,
): void {
  const pb = param as CudaBuffer;
  const n = pb.size;
  const g = grad as CudaBuffer;
  const mb = m as CudaBuffer;
  const vb = v as CudaBuffer;
  const sb = scalars ? (scalars as CudaBuffer) : null;
  if (n === 0) return;
  ctx.rt.launch('adamw', [grid(ctx, n)], [THREADS], 0, [
    pb.ptr,
    DTYPE_CODE[pb.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    mb.ptr,
    vb.ptr,
    p.lr,
    p.beta1,
    p.beta2,
    p.eps,
    1 - p.lr * p.weightDecay,
    1 - p.beta1 ** p.step,
    1 - p.beta2 ** p.step,
    p.gradScale,
    sb ? sb.ptr : 0,
    p.weightDecay,
    n,
  ]);
}

/** The optimizer kernel; its arguments are checked in core (kernelChecks). */
export const adamwKernels = { adamw } satisfies KernelFamily<Ctx>;
