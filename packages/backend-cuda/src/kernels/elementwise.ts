/**
 * Host side of kernels/elementwise.cu: unary ops and their backward, affine, and binary ops over
 * broadcasting views (an output that aliases an operand read through another view reads a copy).
 */
import { type BinaryOp, type DeviceBuffer, type KernelFamily, shapeSize, type UnaryOp, unaryBackwardReadsY, type View } from '@peft/core';
import type { Block } from '../allocator.js';
import type { CudaBuffer } from '../buffer.js';
import { BINARY_CODE, DTYPE_CODE, simplifyViews, UNARY_CODE } from '../kernels.js';
import { type Ctx, grid, isIdentity, THREADS, temp } from './common.js';

function unary(ctx: Ctx, op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
  const o = out as CudaBuffer;
  const n = o.size;
  const xb = x as CudaBuffer;
  ctx.rt.launch('unary', [grid(ctx, n)], [THREADS], 0, [UNARY_CODE[op], o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], n]);
}

function unaryBackward(ctx: Ctx, op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
  const o = dx as CudaBuffer;
  const n = o.size;
  const g = dy as CudaBuffer;
  const v = (unaryBackwardReadsY(op) ? y : x) as CudaBuffer;
  ctx.rt.launch('unary_backward', [grid(ctx, n)], [THREADS], 0, [
    UNARY_CODE[op],
    o.ptr,
    DTYPE_CODE[o.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    v.ptr,
    DTYPE_CODE[v.dtype],
    n,
  ]);
}

function affine(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
  const o = out as CudaBuffer;
  const n = o.size;
  const xb = x as CudaBuffer;
  ctx.rt.launch('affine', [grid(ctx, n)], [THREADS], 0, [o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], alpha, beta, n]);
}

function binary(ctx: Ctx, op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
  const ab = a as CudaBuffer;
  const bb = b as CudaBuffer;
  const o = out as CudaBuffer;
  const n = shapeSize(aView.shape);
  if (n === 0) return;
  const [va, vb] = simplifyViews(aView, bView);
  // An output that aliases an operand read through a non-identity view would race: read a copy.
  const temps: Block[] = [];
  let pa = ab.ptr;
  let pb = bb.ptr;
  if (o === ab && !isIdentity(va)) {
    const t = temp(ctx, ab.byteLength);
    ctx.rt.copyDtoD(t.ptr, ab.ptr, ab.byteLength);
    pa = t.ptr;
    temps.push(t);
  }
  if (o === bb && !isIdentity(vb)) {
    const t = temp(ctx, bb.byteLength);
    ctx.rt.copyDtoD(t.ptr, bb.ptr, bb.byteLength);
    pb = t.ptr;
    temps.push(t);
  }
  ctx.rt.launch('binary', [grid(ctx, n)], [THREADS], 0, [
    BINARY_CODE[op],
    o.ptr,
    DTYPE_CODE[o.dtype],
    pa,
    DTYPE_CODE[ab.dtype],
    va,
    pb,
    DTYPE_CODE[bb.dtype],
    vb,
    n,
  ]);
  for (const t of temps) ctx.rt.release(t);
}

/** The elementwise kernels; their arguments are checked in core (kernelChecks). */
export const elementwiseKernels = { unary, unaryBackward, affine, binary } satisfies KernelFamily<Ctx>;
