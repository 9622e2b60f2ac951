/**
 * Host side of kernels/random.cu: Philox uniform/normal fills and dropout, keyed by (seed,
 * offset). Neither can be captured in a CUDA graph (a replay would draw the same numbers).
 * rowDropout reads its keys from device buffers, so it may be captured: each replay draws the
 * masks of whatever keys were written into them.
 */
import type { DeviceBuffer, DropoutParams, KernelFamily, RandomParams, RowDropoutParams } from '@peft/core';
import { splitKey } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

function random(ctx: Ctx, out: DeviceBuffer, p: RandomParams): void {
  const o = out as CudaBuffer;
  const [k0, k1] = splitKey(p.seed);
  const n = o.size;
  if (n === 0) return;
  notCapturing(ctx, 'random');
  ctx.rt.launch('random_fill', [grid(ctx, Math.ceil(n / 4))], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    k0,
    k1,
    BigInt(p.offset),
    p.distribution === 'uniform' ? 0 : 1,
    p.low,
    p.high,
    n,
  ]);
}

function dropout(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  mask(ctx, 'dropout', out, x, p);
}

function dropoutBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
  mask(ctx, 'dropoutBackward', dx, dy, p);
}

/** Philox's (seed, offset) are launch arguments: a graph would replay the same numbers on every launch. */
function notCapturing(ctx: Ctx, K: string): void {
  if (ctx.rt.capturing) {
    throw new Error(
      `${K}: random numbers cannot be captured in a CUDA graph (every replay would draw the same ones): key dropout per example on the device (setDropoutExamples(model, { device: { streamKeys, rowKeys } }): its rowDropout can be captured), turn it off (p = 0) in a captured step, or run it eagerly`,
    );
  }
}

function mask(ctx: Ctx, K: string, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  const o = out as CudaBuffer;
  const n = o.size;
  const xb = x as CudaBuffer;
  const [k0, k1] = splitKey(p.seed);
  if (n === 0) return;
  if (p.p > 0) notCapturing(ctx, K);
  ctx.rt.launch('dropout', [grid(ctx, Math.ceil(n / 4))], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    xb.ptr,
    DTYPE_CODE[xb.dtype],
    k0,
    k1,
    BigInt(p.offset),
    Math.fround(p.p),
    p.p < 1 ? 1 / (1 - p.p) : 0,
    n,
  ]);
}

function rowDropout(
  ctx: Ctx,
  out: DeviceBuffer,
  x: DeviceBuffer,
  streamKeys: DeviceBuffer,
  rowKeys: DeviceBuffer,
  p: RowDropoutParams,
): void {
  rowMask(ctx, out, x, streamKeys, rowKeys, p);
}

function rowDropoutBackward(
  ctx: Ctx,
  dx: DeviceBuffer,
  dy: DeviceBuffer,
  streamKeys: DeviceBuffer,
  rowKeys: DeviceBuffer,
  p: RowDropoutParams,
): void {
  rowMask(ctx, dx, dy, streamKeys, rowKeys, p);
}

/** One launch over every row: one thread per 4 elements of a row (see row_dropout in random.cu). */
function rowMask(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, streamKeys: DeviceBuffer, rowKeys: DeviceBuffer, p: RowDropoutParams): void {
  const o = out as CudaBuffer;
  const xb = x as CudaBuffer;
  if (o.size === 0) return;
  const blocks = p.rows * Math.ceil(p.features / 4);
  ctx.rt.launch('row_dropout', [grid(ctx, blocks)], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    xb.ptr,
    DTYPE_CODE[xb.dtype],
    (streamKeys as CudaBuffer).ptr,
    p.stream,
    (rowKeys as CudaBuffer).ptr,
    Math.fround(p.p),
    p.p < 1 ? 1 / (1 - p.p) : 0,
    p.rows,
    p.features,
  ]);
}

/** The randomness kernels; their arguments are checked in core (kernelChecks), graph capture here (rowDropout may be captured). */
export const randomKernels = { random, dropout, dropoutBackward, rowDropout, rowDropoutBackward } satisfies KernelFamily<Ctx>;
