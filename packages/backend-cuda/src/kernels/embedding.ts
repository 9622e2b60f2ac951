/**
 * Host side of kernels/embedding.cu: row gathers, and their gradient scattered with float32
 * atomics (into a float32 temporary for a 16-bit table). An id outside the table reads zeros.
 */
import type { DeviceBuffer, KernelFamily } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS, temp } from './common.js';

/** Rows of the table (core checked that its size is a multiple of dim). */
function rowsOf(table: CudaBuffer, dim: number): number {
  return dim === 0 ? 0 : table.size / dim;
}

function embedding(ctx: Ctx, out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  const o = out as CudaBuffer;
  const w = weight as CudaBuffer;
  const idx = ids as CudaBuffer;
  const rows = rowsOf(w, dim);
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

function embeddingBackward(ctx: Ctx, dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  const dw = dWeight as CudaBuffer;
  const rows = rowsOf(dw, dim);
  const g = dOut as CudaBuffer;
  const idx = ids as CudaBuffer;
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

/** The embedding kernels; their arguments are checked in core (kernelChecks). The GPU does not read ids here, so an id out of range reads zeros. */
export const embeddingKernels = { embedding, embeddingBackward } satisfies KernelFamily<Ctx>;
