/** Host side of kernels/rotary.cu: rotary position embeddings and their backward (the inverse rotation). */
import type { DeviceBuffer, RotaryParams } from '@peft/core';
import { arg, counts, finite } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

export function rotary(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, 'rotary', ['out', 'x'], out, x, positions, p, 1);
}

export function rotaryBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, 'rotaryBackward', ['dx', 'dy'], dx, dy, positions, p, -1);
}

function rotate(
  ctx: Ctx,
  K: string,
  names: [string, string],
  out: DeviceBuffer,
  x: DeviceBuffer,
  positions: DeviceBuffer,
  p: RotaryParams,
  sign: number,
): void {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  counts(K, { batch, seq, heads, headDim, rotaryDim });
  finite(K, 'base', base);
  finite(K, 'positionScale', positionScale);
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim)
    throw new Error(`${K}: rotaryDim ${rotaryDim} must be even and at most headDim ${headDim}`);
  if (!(base > 0) || !(positionScale > 0)) throw new Error(`${K}: base (${base}) and positionScale (${positionScale}) must be positive`);
  const n = batch * seq * heads * headDim;
  const o = arg(ctx.owner, K, names[0], out, n, 'float');
  const xb = arg(ctx.owner, K, names[1], x, n, 'float');
  const pos = arg(ctx.owner, K, 'positions', positions, batch * seq, 'int32');
  const tokens = batch * seq;
  const work = tokens * heads * (rotaryDim / 2 + headDim - rotaryDim);
  if (work === 0) return;
  ctx.rt.launch('rotary', [grid(ctx, work)], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    xb.ptr,
    DTYPE_CODE[xb.dtype],
    pos.ptr,
    tokens,
    heads,
    headDim,
    rotaryDim,
    base,
    positionScale,
    sign,
  ]);
}
