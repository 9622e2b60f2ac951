/**
 * Host side of kernels/norms.cu: LayerNorm and RMSNorm (one kernel, without the mean for RMSNorm)
 * over rows, their backward, and the weight/bias gradients summed over chunks of rows.
 */
import type { DeviceBuffer, KernelFamily, KernelImpl, NormParams } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, THREADS } from './common.js';

function rowThreads(dim: number): number {
  return Math.min(1024, Math.max(32, Math.ceil(Math.min(dim, THREADS * 4) / 4 / 32) * 32));
}

const layerNorm: KernelImpl<Ctx, 'layerNorm'> = (ctx, out, mean, rstd, x, weight, bias, p) => {
  normForward(ctx, out, mean, rstd, x, weight, bias, p);
};

const rmsNorm: KernelImpl<Ctx, 'rmsNorm'> = (ctx, out, rstd, x, weight, p) => {
  normForward(ctx, out, null, rstd, x, weight, null, p);
};

function normForward(
  ctx: Ctx,
  out: DeviceBuffer,
  mean: DeviceBuffer | null,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  bias: DeviceBuffer | null,
  p: NormParams,
): void {
  const { rows, dim, eps } = p;
  const o = out as CudaBuffer;
  const mb = mean as CudaBuffer | null;
  const rb = rstd as CudaBuffer;
  const xb = x as CudaBuffer;
  const w = weight as CudaBuffer | null;
  const b = bias as CudaBuffer | null;
  if (rows === 0) return;
  ctx.rt.launch('layer_norm', [rows], [rowThreads(dim)], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    mb?.ptr ?? 0,
    rb.ptr,
    xb.ptr,
    DTYPE_CODE[xb.dtype],
    w?.ptr ?? 0,
    w ? DTYPE_CODE[w.dtype] : 0,
    b?.ptr ?? 0,
    b ? DTYPE_CODE[b.dtype] : 0,
    dim,
    eps,
    mean === null ? 1 : 0,
  ]);
}

const layerNormBackward: KernelImpl<Ctx, 'layerNormBackward'> = (ctx, dx, dWeight, dBias, dy, x, weight, mean, rstd, p) => {
  normBackward(ctx, dx, dWeight, dBias, dy, x, weight, mean, rstd, p);
};

const rmsNormBackward: KernelImpl<Ctx, 'rmsNormBackward'> = (ctx, dx, dWeight, dy, x, weight, rstd, p) => {
  normBackward(ctx, dx, dWeight, null, dy, x, weight, null, rstd, p);
};

function normBackward(
  ctx: Ctx,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dBias: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  mean: DeviceBuffer | null,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  const { rows, dim } = p;
  const o = dx as CudaBuffer;
  const dw = dWeight as CudaBuffer | null;
  const db = dBias as CudaBuffer | null;
  const g = dy as CudaBuffer;
  const xb = x as CudaBuffer;
  const w = weight as CudaBuffer | null;
  const mb = mean as CudaBuffer | null;
  const rb = rstd as CudaBuffer;
  // Parameter gradients first: dx may overwrite dy or x.
  if ((dw || db) && dim > 0) {
    if (dw) ctx.rt.memsetD32(dw.ptr, 0, dim);
    if (db) ctx.rt.memsetD32(db.ptr, 0, dim);
    if (rows > 0) {
      const colBlocks = Math.ceil(dim / THREADS);
      const chunks = Math.max(1, Math.min(rows, 65535, Math.ceil((ctx.rt.info.multiprocessors * 8) / colBlocks)));
      const perChunk = Math.ceil(rows / chunks);
      ctx.rt.launch('norm_param_grad', [colBlocks, Math.ceil(rows / perChunk)], [THREADS], 0, [
        dw?.ptr ?? 0,
        db?.ptr ?? 0,
        g.ptr,
        DTYPE_CODE[g.dtype],
        xb.ptr,
        DTYPE_CODE[xb.dtype],
        mb?.ptr ?? 0,
        rb.ptr,
        rows,
        dim,
        perChunk,
      ]);
    }
  }
  if (rows === 0) return;
  ctx.rt.launch('layer_norm_backward', [rows], [rowThreads(dim)], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    xb.ptr,
    DTYPE_CODE[xb.dtype],
    w?.ptr ?? 0,
    w ? DTYPE_CODE[w.dtype] : 0,
    mb?.ptr ?? 0,
    rb.ptr,
    dim,
  ]);
}

/** The norm kernels; their arguments are checked in core (kernelChecks). */
export const normKernels = { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } satisfies KernelFamily<Ctx>;
