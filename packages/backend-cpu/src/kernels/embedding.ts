/** Embedding lookup and its scatter-add backward. An id outside [0, rows) is an error. */
import { checkIdsInRange, type DeviceBuffer, type KernelFamily, type KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, flushF32, readF32, scratch, writeF32 } from '../storage.js';

/** out [n, dim] = weight[ids[i]]; same dtypes copy raw bits, otherwise values round to out's dtype. */
function embedding(_ctx: CpuContext, out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  const o = out as CpuBuffer;
  const w = weight as CpuBuffer;
  const idx = checkIds('embedding', ids as CpuBuffer, n, rowsOf(w, dim));
  if (o.dtype === w.dtype) {
    const src = w.data;
    const dst = o.data;
    for (let i = 0; i < n; i++) {
      const row = idx[i] * dim;
      (dst as Float32Array).set((src as Float32Array).subarray(row, row + dim), i * dim);
    }
    return;
  }
  for (let i = 0; i < n; i++) {
    const row = readF32(w, idx[i] * dim, dim, 0);
    const ri = at(w, idx[i] * dim);
    const ys = writeF32(o, dim, 1);
    const yi = at(o, i * dim);
    for (let j = 0; j < dim; j++) ys[yi + j] = row[ri + j];
    flushF32(o, i * dim, dim, ys);
  }
}

/** dWeight [rows, dim] = 0, then dWeight[ids[i]] += dOut[i] (accumulated in float32). */
const embeddingBackward: KernelImpl<CpuContext, 'embeddingBackward'> = (_ctx, dWeight, dOut, ids, n, dim) => {
  const dw = dWeight as CpuBuffer;
  const rows = rowsOf(dw, dim);
  const gb = dOut as CpuBuffer;
  const idx = checkIds('embeddingBackward', ids as CpuBuffer, n, rows);
  if (dw.dtype === 'float32') {
    const acc = dw.data as Float32Array;
    acc.fill(0, 0, rows * dim);
    for (let i = 0; i < n; i++) {
      const row = idx[i] * dim;
      const g = readF32(gb, i * dim, dim, 0);
      const gi = at(gb, i * dim);
      for (let j = 0; j < dim; j++) acc[row + j] += g[gi + j];
    }
    return;
  }
  // 16-bit dWeight: zero the bits, sum the rows that ids name in float32 scratch (in order of i,
  // as a float32 dWeight would), round each of them once.
  (dw.data as Uint16Array).fill(0, 0, rows * dim);
  const slotOf = new Int32Array(rows).fill(-1);
  const touched: number[] = [];
  for (let i = 0; i < n; i++) {
    if (slotOf[idx[i]] < 0) {
      slotOf[idx[i]] = touched.length;
      touched.push(idx[i]);
    }
  }
  const acc = scratch(1, touched.length * dim);
  acc.fill(0, 0, touched.length * dim);
  for (let i = 0; i < n; i++) {
    const a = slotOf[idx[i]] * dim;
    const g = readF32(gb, i * dim, dim, 0);
    const gi = at(gb, i * dim);
    for (let j = 0; j < dim; j++) acc[a + j] += g[gi + j];
  }
  for (let k = 0; k < touched.length; k++) flushF32(dw, touched[k] * dim, dim, acc, k * dim);
};

/** Rows of the table (core checked that its size is a multiple of dim). */
function rowsOf(w: CpuBuffer, dim: number): number {
  return dim === 0 ? 0 : w.size / dim;
}

/** The ids as an array, checked in range here: a value check needs the data (core checks the arguments themselves). */
function checkIds(kernel: string, ids: CpuBuffer, n: number, rows: number): Int32Array {
  const idx = ids.data as Int32Array;
  checkIdsInRange(kernel, idx, n, rows);
  return idx;
}

/** The embedding kernels; their arguments are checked in core (kernelChecks), the ids' range here. */
export const embeddingKernels = { embedding, embeddingBackward } satisfies KernelFamily<CpuContext>;
