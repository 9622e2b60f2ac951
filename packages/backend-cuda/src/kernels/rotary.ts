/** Host side of kernels/rotary.cu: rotary position embeddings and their backward (the inverse rotation). */
import type { DeviceBuffer, KernelFamily, RotaryParams } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

function rotary(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, out, x, positions, p, 1);
}

function rotaryBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, dx, dy, positions, p, -1);
}

function rotate(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams, sign: number): void {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  const o = out as CudaBuffer;
  const xb = x as CudaBuffer;
  const pos = positions as CudaBuffer;
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

/** The rotary kernels; their arguments are checked in core (kernelChecks). */
export const rotaryKernels = { rotary, rotaryBackward } satisfies KernelFamily<Ctx>;
