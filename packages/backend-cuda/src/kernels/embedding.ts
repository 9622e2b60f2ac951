/**
 * Host side of kernels/embedding.cu: row gathers, and their gradient scattered with float32
 * atomics (into a float32 temporary for a 16-bit table). An id outside the table reads zeros.
 */
import type { DeviceBuffer } from '@peft/core';
import { arg, counts } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS, temp } from './common.js';

function rowsOf(kernel: string, size: number, dim: number): number {
  if (dim === 0) return 0;
  if (size % dim !== 0) throw new Error(`${kernel}: the weight buffer has ${size} elements, not a multiple of dim ${dim}`);
  return size / dim;
}

export function embedding(ctx: Ctx, out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  counts('embedding', { n, dim });
  const o = arg(ctx.owner, 'embedding', 'out', out, n * dim, 'float');
  const w = arg(ctx.owner, 'embedding', 'weight', weight, dim, 'float');
  const idx = arg(ctx.owner, 'embedding', 'ids', ids, n, 'int32');
  const rows = rowsOf('embedding', w.size, dim);
  if (n * dim === 0) return;
  ctx.rt.launch('embedding', [grid(ctx, n * dim)], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    w.ptr,
    DTYPE_CODE[w.dtype],
    idx.ptr,
    n,
    dim,
    rows,
  ]);
}

export function embeddingBackward(ctx: Ctx, dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  const K = 'embeddingBackward';
  counts(K, { n, dim });
  const dw = arg(ctx.owner, K, 'dWeight', dWeight, dim, 'float');
  const rows = rowsOf(K, dw.size, dim);
  const g = arg(ctx.owner, K, 'dOut', dOut, n * dim, 'float');
  const idx = arg(ctx.owner, K, 'ids', ids, n, 'int32');
  if (rows * dim === 0) return;
  const acc = dw.dtype === 'float32' ? null : temp(ctx, rows * dim * 4);
  const accPtr = acc ? acc.ptr : dw.ptr;
  ctx.rt.memsetD32(accPtr, 0, rows * dim);
  if (n * dim > 0)
    ctx.rt.launch('embedding_backward', [grid(ctx, n * dim)], [THREADS], 0, [accPtr, g.ptr, DTYPE_CODE[g.dtype], idx.ptr, n, dim, rows]);
  if (acc) {
    const count = rows * dim;
    ctx.rt.launch('copy_convert', [grid(ctx, count)], [THREADS], 0, [
      dw.ptr,
      DTYPE_CODE[dw.dtype],
      acc.ptr,
      DTYPE_CODE.float32,
      { shape: [count], strides: [1], offset: 0 },
      count,
    ]);
    ctx.rt.release(acc);
  }
}
