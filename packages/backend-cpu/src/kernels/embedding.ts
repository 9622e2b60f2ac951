/** Embedding lookup and its scatter-add backward. An id outside [0, rows) is an error. */
import type { DeviceBuffer } from '@peft/core';
import { arg, type CpuBuffer, type CpuContext, counts } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

/** out [n, dim] = weight[ids[i]]; same dtypes copy raw bits, otherwise values round to out's dtype. */
export function embedding(ctx: CpuContext, out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  counts('embedding', { n, dim });
  const o = arg(ctx, 'embedding', 'out', out, n * dim, 'float');
  const w = arg(ctx, 'embedding', 'weight', weight, dim, 'float');
  const idx = checkIds('embedding', arg(ctx, 'embedding', 'ids', ids, n, 'int32'), n, rowsOf('embedding', w, dim));
  if (o.dtype === w.dtype) {
    const src = w.data;
    const dst = o.data;
    for (let i = 0; i < n; i++) {
      const row = idx[i] * dim;
      (dst as Float32Array).set((src as Float32Array).subarray(row, row + dim), i * dim);
    }
    return;
  }
  const ys = new Float32Array(n * dim);
  for (let i = 0; i < n; i++) ys.set(loadF32(w, idx[i] * dim, dim), i * dim);
  storeF32(o, ys);
}

/** dWeight [rows, dim] = 0, then dWeight[ids[i]] += dOut[i] (accumulated in float32). */
export function embeddingBackward(
  ctx: CpuContext,
  dWeight: DeviceBuffer,
  dOut: DeviceBuffer,
  ids: DeviceBuffer,
  n: number,
  dim: number,
): void {
  counts('embeddingBackward', { n, dim });
  const dw = arg(ctx, 'embeddingBackward', 'dWeight', dWeight, dim, 'float');
  const rows = rowsOf('embeddingBackward', dw, dim);
  const g = loadF32(arg(ctx, 'embeddingBackward', 'dOut', dOut, n * dim, 'float'), 0, n * dim);
  const idx = checkIds('embeddingBackward', arg(ctx, 'embeddingBackward', 'ids', ids, n, 'int32'), n, rows);
  const acc = outF32(dw, rows * dim);
  acc.fill(0);
  for (let i = 0; i < n; i++) {
    const row = idx[i] * dim;
    const src = i * dim;
    for (let j = 0; j < dim; j++) acc[row + j] += g[src + j];
  }
  storeF32(dw, acc);
}

function rowsOf(kernel: string, w: CpuBuffer, dim: number): number {
  if (dim === 0) return 0;
  if (w.size % dim !== 0) throw new Error(`${kernel}: the weight buffer has ${w.size} elements, not a multiple of dim ${dim}`);
  return w.size / dim;
}

function checkIds(kernel: string, ids: CpuBuffer, n: number, rows: number): Int32Array {
  const idx = ids.data as Int32Array;
  for (let i = 0; i < n; i++) {
    const id = idx[i];
    if (id < 0 || id >= rows) throw new Error(`${kernel}: ids[${i}] = ${id} is outside the weight's rows: valid ids are 0..${rows - 1}`);
  }
  return idx;
}
