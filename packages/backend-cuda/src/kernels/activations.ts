/** Host side of kernels/activations.cu: GELU (exact or tanh) and SiLU-gated products, with their backward. */
import type { DeviceBuffer } from '@peft/core';
import { arg, same } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

export function gelu(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = arg(ctx.owner, 'gelu', 'out', out, 0, 'float');
  const n = o.size;
  const xb = same(ctx.owner, 'gelu', 'x', x, n, 'float');
  ctx.rt.launch('gelu', [grid(ctx, n)], [THREADS], 0, [o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], approximate ? 1 : 0, n]);
}

export function geluBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = arg(ctx.owner, 'geluBackward', 'dx', dx, 0, 'float');
  const n = o.size;
  const g = same(ctx.owner, 'geluBackward', 'dy', dy, n, 'float');
  const xb = same(ctx.owner, 'geluBackward', 'x', x, n, 'float');
  ctx.rt.launch('gelu_backward', [grid(ctx, n)], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    xb.ptr,
    DTYPE_CODE[xb.dtype],
    approximate ? 1 : 0,
    n,
  ]);
}

export function siluMul(ctx: Ctx, out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  const o = arg(ctx.owner, 'siluMul', 'out', out, 0, 'float');
  const n = o.size;
  const gb = same(ctx.owner, 'siluMul', 'gate', gate, n, 'float');
  const ub = same(ctx.owner, 'siluMul', 'up', up, n, 'float');
  ctx.rt.launch('silu_mul', [grid(ctx, n)], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    gb.ptr,
    DTYPE_CODE[gb.dtype],
    ub.ptr,
    DTYPE_CODE[ub.dtype],
    n,
  ]);
}

export function siluMulBackward(
  ctx: Ctx,
  dGate: DeviceBuffer,
  dUp: DeviceBuffer,
  dy: DeviceBuffer,
  gate: DeviceBuffer,
  up: DeviceBuffer,
): void {
  const K = 'siluMulBackward';
  const dg = arg(ctx.owner, K, 'dGate', dGate, 0, 'float');
  const n = dg.size;
  const du = same(ctx.owner, K, 'dUp', dUp, n, 'float');
  if (dg === du) throw new Error(`${K}: dGate and dUp must be different buffers`);
  const g = same(ctx.owner, K, 'dy', dy, n, 'float');
  const gb = same(ctx.owner, K, 'gate', gate, n, 'float');
  const ub = same(ctx.owner, K, 'up', up, n, 'float');
  ctx.rt.launch('silu_mul_backward', [grid(ctx, n)], [THREADS], 0, [
    dg.ptr,
    DTYPE_CODE[dg.dtype],
    du.ptr,
    DTYPE_CODE[du.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    gb.ptr,
    DTYPE_CODE[gb.dtype],
    ub.ptr,
    DTYPE_CODE[ub.dtype],
    n,
  ]);
}
