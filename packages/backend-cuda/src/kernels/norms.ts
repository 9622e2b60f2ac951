/**
 * Host side of kernels/norms.cu: LayerNorm and RMSNorm (one kernel, without the mean for RMSNorm)
 * over rows, their backward, and the weight/bias gradients summed over chunks of rows.
 */
import type { DeviceBuffer, NormParams } from '@peft/core';
import { arg, counts, finite } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, THREADS } from './common.js';

function checkNorm(kernel: string, p: NormParams): void {
  counts(kernel, { rows: p.rows, dim: p.dim });
  finite(kernel, 'eps', p.eps);
  if (p.eps < 0) throw new Error(`${kernel}: eps must be non-negative, got ${p.eps}`);
}

function rowThreads(dim: number): number {
  return Math.min(1024, Math.max(32, Math.ceil(Math.min(dim, THREADS * 4) / 4 / 32) * 32));
}

export function layerNorm(
  ctx: Ctx,
  out: DeviceBuffer,
  mean: DeviceBuffer,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  bias: DeviceBuffer | null,
  p: NormParams,
): void {
  normForward(ctx, 'layerNorm', out, mean, rstd, x, weight, bias, p);
}

export function rmsNorm(
  ctx: Ctx,
  out: DeviceBuffer,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  p: NormParams,
): void {
  normForward(ctx, 'rmsNorm', out, null, rstd, x, weight, null, p);
}

function normForward(
  ctx: Ctx,
  K: string,
  out: DeviceBuffer,
  mean: DeviceBuffer | null,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  bias: DeviceBuffer | null,
  p: NormParams,
): void {
  checkNorm(K, p);
  const { rows, dim, eps } = p;
  const o = arg(ctx.owner, K, 'out', out, rows * dim, 'float');
  const mb = mean === null ? null : arg(ctx.owner, K, 'mean', mean, rows, 'float32');
  const rb = arg(ctx.owner, K, 'rstd', rstd, rows, 'float32');
  const xb = arg(ctx.owner, K, 'x', x, rows * dim, 'float');
  const w = weight === null ? null : arg(ctx.owner, K, 'weight', weight, dim, 'float');
  const b = bias === null ? null : arg(ctx.owner, K, 'bias', bias, dim, 'float');
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

export function layerNormBackward(
  ctx: Ctx,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dBias: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  mean: DeviceBuffer,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  normBackward(ctx, 'layerNormBackward', dx, dWeight, dBias, dy, x, weight, mean, rstd, p);
}

export function rmsNormBackward(
  ctx: Ctx,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  normBackward(ctx, 'rmsNormBackward', dx, dWeight, null, dy, x, weight, null, rstd, p);
}

function normBackward(
  ctx: Ctx,
  K: string,
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
  checkNorm(K, p);
  const { rows, dim } = p;
  const o = arg(ctx.owner, K, 'dx', dx, rows * dim, 'float');
  const dw = dWeight === null ? null : arg(ctx.owner, K, 'dWeight', dWeight, dim, 'float32');
  const db = dBias === null ? null : arg(ctx.owner, K, 'dBias', dBias, dim, 'float32');
  const g = arg(ctx.owner, K, 'dy', dy, rows * dim, 'float');
  const xb = arg(ctx.owner, K, 'x', x, rows * dim, 'float');
  const w = weight === null ? null : arg(ctx.owner, K, 'weight', weight, dim, 'float');
  const mb = mean === null ? null : arg(ctx.owner, K, 'mean', mean, rows, 'float32');
  const rb = arg(ctx.owner, K, 'rstd', rstd, rows, 'float32');
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
