/** Host side of kernels/activations.cu: GELU (exact or tanh) and SiLU-gated products, with their backward. */
import type { DeviceBuffer, KernelFamily } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

function gelu(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = out as CudaBuffer;
  const n = o.size;
  const xb = x as CudaBuffer;
  ctx.rt.launch('gelu', [grid(ctx, n)], [THREADS], 0, [o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], approximate ? 1 : 0, n]);
}

function geluBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = dx as CudaBuffer;
  const n = o.size;
  const g = dy as CudaBuffer;
  const xb = x as CudaBuffer;
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

function siluMul(ctx: Ctx, out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  const o = out as CudaBuffer;
  const n = o.size;
  const gb = gate as CudaBuffer;
  const ub = up as CudaBuffer;
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

function siluMulBackward(ctx: Ctx, dGate: DeviceBuffer, dUp: DeviceBuffer, dy: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  const dg = dGate as CudaBuffer;
  const n = dg.size;
  const du = dUp as CudaBuffer;
  const g = dy as CudaBuffer;
  const gb = gate as CudaBuffer;
  const ub = up as CudaBuffer;
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

/** The activation kernels; their arguments are checked in core (kernelChecks). */
export const activationKernels = { gelu, geluBackward, siluMul, siluMulBackward } satisfies KernelFamily<Ctx>;
