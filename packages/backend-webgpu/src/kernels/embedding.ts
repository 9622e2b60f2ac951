/**
 * Embedding lookup and its scatter-add backward. An id outside [0, rows) reads as a row of zeros
 * (a GPU kernel cannot throw) and contributes nothing to the backward.
 */
import type { DeviceBuffer } from '@peft/core';
import { arg, counts, type WebGpuBuffer } from '../buffer.js';
import { type Ctx, map, WG } from './common.js';
import { copy } from './copy.js';

function rowsOf(kernel: string, w: WebGpuBuffer, dim: number): number {
  if (dim === 0) return 0;
  if (w.size % dim !== 0) throw new Error(`${kernel}: the weight buffer has ${w.size} elements, not a multiple of dim ${dim}`);
  return w.size / dim;
}

/** out [n, dim] = weight[ids[i]]; same dtypes copy raw bits, otherwise values round to out's dtype. */
export function embedding(ctx: Ctx, out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  counts('embedding', { n, dim });
  const o = arg(ctx.owner, 'embedding', 'out', out, n * dim, 'float');
  const w = arg(ctx.owner, 'embedding', 'weight', weight, dim, 'float');
  const rows = rowsOf('embedding', w, dim);
  const idb = arg(ctx.owner, 'embedding', 'ids', ids, n, 'int32');
  const store =
    o.dtype === w.dtype
      ? 'stw_out(i, select(0u, raw_weight(u32(id) * P.dim + j), ok));'
      : 'st_out(i, select(0.0, ld_weight(u32(id) * P.dim + j), ok));';
  map(
    ctx,
    'embedding',
    n * dim,
    [
      { name: 'out', buf: o, access: 'write' },
      { name: 'weight', buf: w, access: 'read' },
      { name: 'ids', buf: idb, access: 'read' },
    ],
    `let row = i / P.dim;
  let j = i % P.dim;
  let id = ld_ids(row);
  let ok = id >= 0 && u32(id) < P.rows;
  ${store}`,
    [
      ['dim', 'u32', dim],
      ['rows', 'u32', rows],
    ],
  );
}

/**
 * dWeight [rows, dim] = 0, then dWeight[ids[i]] += dOut[i]: one thread per column walks the ids in
 * order (deterministic, no float atomics), summing in float32; a 16-bit dWeight is rounded once at the end.
 */
export function embeddingBackward(ctx: Ctx, dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
  counts('embeddingBackward', { n, dim });
  const dw = arg(ctx.owner, 'embeddingBackward', 'dWeight', dWeight, dim, 'float');
  const rows = rowsOf('embeddingBackward', dw, dim);
  const g = arg(ctx.owner, 'embeddingBackward', 'dOut', dOut, n * dim, 'float');
  const idb = arg(ctx.owner, 'embeddingBackward', 'ids', ids, n, 'int32');
  const acc = dw.dtype === 'float32' ? dw : ctx.rt.temp(ctx.owner, 'float32', rows * dim, 'embeddingBackward');
  map(ctx, 'embeddingBackward', rows * dim, [{ name: 'acc', buf: acc, access: 'write' }], 'st_acc(i, 0.0);');
  ctx.rt.launch({
    kernel: 'embeddingBackward',
    params: [
      ['n', 'u32', n],
      ['dim', 'u32', dim],
      ['rows', 'u32', rows],
    ],
    bindings: [
      { name: 'acc', buf: acc, access: 'readwrite' },
      { name: 'g', buf: g, access: 'read' },
      { name: 'ids', buf: idb, access: 'read' },
    ],
    code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let j = group * ${WG}u + lid;
  if (j >= P.dim) { return; }
  for (var i = 0u; i < P.n; i++) {
    let id = ld_ids(i);
    if (id >= 0 && u32(id) < P.rows) {
      let at = u32(id) * P.dim + j;
      st_acc(at, ld_acc(at) + ld_g(i * P.dim + j));
    }
  }
}`,
    groups: Math.ceil(dim / WG),
  });
  if (acc !== dw) {
    copy(ctx, dw, acc, { shape: [rows * dim], strides: [1], offset: 0 });
    ctx.rt.done(acc);
  }
}
