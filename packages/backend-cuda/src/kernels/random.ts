/**
 * Host side of kernels/random.cu: Philox uniform/normal fills and dropout, keyed by (seed,
 * offset). Neither can be captured in a CUDA graph (a replay would draw the same numbers).
 */
import type { DeviceBuffer, DropoutParams, RandomParams } from '@peft/core';
import { splitKey } from '@peft/core';
import { arg, finite, same } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

function checkOffset(kernel: string, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`${kernel}: offset must be a non-negative safe integer, got ${offset}`);
}

export function random(ctx: Ctx, out: DeviceBuffer, p: RandomParams): void {
  const o = arg(ctx.owner, 'random', 'out', out, 0, 'float');
  finite('random', 'low', p.low);
  finite('random', 'high', p.high);
  if (p.distribution !== 'uniform' && p.distribution !== 'normal') {
    throw new Error(`random: distribution ${JSON.stringify(p.distribution)} is not supported: use uniform or normal`);
  }
  const [k0, k1] = splitKey(p.seed);
  checkOffset('random', p.offset);
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

export function dropout(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  mask(ctx, 'dropout', ['out', 'x'], out, x, p);
}

export function dropoutBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
  mask(ctx, 'dropoutBackward', ['dx', 'dy'], dx, dy, p);
}

/** Philox's (seed, offset) are launch arguments: a graph would replay the same numbers on every launch. */
function notCapturing(ctx: Ctx, K: string): void {
  if (ctx.rt.capturing) {
    throw new Error(
      `${K}: random numbers cannot be captured in a CUDA graph (every replay would draw the same ones): turn dropout off (p = 0) in a captured step, or run it eagerly`,
    );
  }
}

function mask(ctx: Ctx, K: string, names: [string, string], out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  finite(K, 'p', p.p);
  if (p.p < 0 || p.p > 1) throw new Error(`${K}: p must be in [0, 1], got ${p.p}`);
  const o = arg(ctx.owner, K, names[0], out, 0, 'float');
  const n = o.size;
  const xb = same(ctx.owner, K, names[1], x, n, 'float');
  const [k0, k1] = splitKey(p.seed);
  checkOffset(K, p.offset);
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
