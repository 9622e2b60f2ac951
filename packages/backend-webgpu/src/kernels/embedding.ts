/**
 * Embedding lookup and its scatter-add backward. An id outside [0, rows) reads as a row of zeros
 * (a GPU kernel cannot throw) and contributes nothing to the backward.
 */
import { embeddingRows, type KernelFamily } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map, WG } from './common.js';
import { copyView } from './copy.js';

/** embedding and embeddingBackward; their arguments are checked in core (kernelChecks). */
export const embeddingKernels = {
  /** out [n, dim] = weight[ids[i]]; same dtypes copy raw bits, otherwise values round to out's dtype. */
  embedding(ctx, out, weight, ids, n, dim) {
    const store =
      out.dtype === weight.dtype
        ? 'stw_out(i, select(0u, raw_weight(u32(id) * P.dim + j), ok));'
        : 'st_out(i, select(0.0, ld_weight(u32(id) * P.dim + j), ok));';
    const bindings = [
      { name: 'out', buf: out as WebGpuBuffer, access: 'write' },
      { name: 'weight', buf: weight as WebGpuBuffer, access: 'read' },
      { name: 'ids', buf: ids as WebGpuBuffer, access: 'read' },
    ] as const;
    map(
      ctx,
      'embedding',
      n * dim,
      bindings,
      `let row = i / P.dim;
  let j = i % P.dim;
  let id = ld_ids(row);
  let ok = id >= 0 && u32(id) < P.rows;
  ${store}`,
      [
        ['dim', 'u32', dim],
        ['rows', 'u32', embeddingRows('embedding', weight, dim)],
      ],
    );
  },

  /**
   * dWeight [rows, dim] = 0, then dWeight[ids[i]] += dOut[i]: one thread per column walks the ids in
   * order (deterministic, no float atomics), summing in float32; a 16-bit dWeight is rounded once at the end.
   */
  embeddingBackward(ctx, dWeight, dOut, ids, n, dim) {
    const dw = dWeight as WebGpuBuffer;
    const rows = embeddingRows('embeddingBackward', dw, dim);
    const acc = dw.dtype === 'float32' ? dw : ctx.rt.temp(ctx, 'float32', rows * dim, 'embeddingBackward');
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
        { name: 'g', buf: dOut as WebGpuBuffer, access: 'read' },
        { name: 'ids', buf: ids as WebGpuBuffer, access: 'read' },
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
      copyView(ctx, dw, acc, { shape: [rows * dim], strides: [1], offset: 0 });
      ctx.rt.done(acc);
    }
  },
} satisfies KernelFamily<Ctx>;
