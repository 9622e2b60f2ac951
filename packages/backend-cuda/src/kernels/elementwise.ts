/**
 * Host side of kernels/elementwise.cu: unary ops and their backward, affine, and binary ops over
 * broadcasting views (an output that aliases an operand read through another view reads a copy).
 */
import type { BinaryOp, DeviceBuffer, UnaryOp, View } from '@peft/core';
import type { Block } from '../allocator.js';
import { arg, finite, same } from '../buffer.js';
import { BINARY_CODE, DTYPE_CODE, simplifyViews, UNARY_CODE } from '../kernels.js';
import { type Ctx, checkView, grid, isIdentity, THREADS, temp } from './common.js';

export function unary(ctx: Ctx, op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
  const K = `unary(${op})`;
  if (!(op in UNARY_CODE)) throw new Error(`unary: unknown op ${JSON.stringify(op)}`);
  const o = arg(ctx.owner, K, 'out', out, 0, 'float');
  const n = o.size;
  const xb = same(ctx.owner, K, 'x', x, n, 'float');
  ctx.rt.launch('unary', [grid(ctx, n)], [THREADS], 0, [UNARY_CODE[op], o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], n]);
}

export function unaryBackward(ctx: Ctx, op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
  const K = `unaryBackward(${op})`;
  if (!(op in UNARY_CODE)) throw new Error(`unaryBackward: unknown op ${JSON.stringify(op)}`);
  const o = arg(ctx.owner, K, 'dx', dx, 0, 'float');
  const n = o.size;
  const g = same(ctx.owner, K, 'dy', dy, n, 'float');
  const usesY = op === 'exp' || op === 'sqrt' || op === 'rsqrt' || op === 'sigmoid' || op === 'tanh';
  const v = usesY ? same(ctx.owner, K, 'y', y, n, 'float') : same(ctx.owner, K, 'x', x, n, 'float');
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

export function affine(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
  finite('affine', 'alpha', alpha);
  finite('affine', 'beta', beta);
  const o = arg(ctx.owner, 'affine', 'out', out, 0, 'float');
  const n = o.size;
  const xb = same(ctx.owner, 'affine', 'x', x, n, 'float');
  ctx.rt.launch('affine', [grid(ctx, n)], [THREADS], 0, [o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], alpha, beta, n]);
}

export function binary(ctx: Ctx, op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
  const K = `binary(${op})`;
  if (!(op in BINARY_CODE)) throw new Error(`binary: unknown op ${JSON.stringify(op)}`);
  const ab = arg(ctx.owner, K, 'a', a, 0, 'float');
  const bb = arg(ctx.owner, K, 'b', b, 0, 'float');
  const n = checkView(K, aView, 'a', ab.size);
  checkView(K, bView, 'b', bb.size, aView.shape);
  const o = arg(ctx.owner, K, 'out', out, n, 'float');
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
