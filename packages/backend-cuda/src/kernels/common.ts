/**
 * What the op families (one file per kernels/<family>.cu) need from the CUDA backend, and the
 * launch and argument helpers they share.
 */
import type { View } from '@peft/core';
import type { Block } from '../allocator.js';
import type { CublasLt } from '../cublaslt.js';
import type { KernelView } from '../kernels.js';
import type { CudaRuntime } from '../runtime.js';

export interface Ctx {
  /** The backend: owner of every buffer it allocated (kernels refuse other backends' buffers). */
  readonly owner: object;
  readonly rt: CudaRuntime;
  /** cuBLASLt, or null when not found or turned off (then GEMMs run on the tiled kernel). */
  readonly lt: CublasLt | null;
  /** Matmul calls per path since the backend's creation; the matmul family counts into it. */
  readonly gemmCounts: { cublasLt: number; tiled: number; skinny: number };
  /** Attention on the tensor-core kernels where they apply (see CudaBackendOptions.tensorCores). */
  readonly tensorCores: boolean;
  /** LoRA's mixed-dtype GEMMs on the skinny kernels (see CudaBackendOptions.mixedKernels). */
  readonly mixedKernels: boolean;
}

/** Threads per block of the one-thread-per-element kernels. */
export const THREADS = 256;

/** Blocks for `n` elements: enough for one element per thread, at most 16 per multiprocessor (the kernels loop). */
export function grid(ctx: Ctx, n: number): number {
  return Math.max(1, Math.min(Math.ceil(n / THREADS), ctx.rt.info.multiprocessors * 16));
}

/** A temporary device block, released right after the kernels that use it are enqueued (stream order keeps that safe). */
export function temp(ctx: Ctx, bytes: number): Block {
  return ctx.rt.alloc(bytes);
}

/** Validates a view over a buffer of `size` elements (and its shape, when given); returns its element count. */
export function checkView(kernel: string, view: View, name: string, size: number, shape: readonly number[] = view.shape): number {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${kernel}: view shape [${shape.join(',')}] has a bad dimension ${d}`);
    count *= d;
  }
  if (view.shape.length !== shape.length || view.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${kernel}: ${name} view has shape [${view.shape.join(',')}] but the op needs [${shape.join(',')}]`);
  }
  if (view.strides.length !== shape.length)
    throw new Error(`${kernel}: ${name} view has ${view.strides.length} strides for ${shape.length} dimensions`);
  if (!Number.isSafeInteger(view.offset) || view.offset < 0) {
    throw new Error(`${kernel}: ${name} view offset must be a non-negative integer, got ${view.offset}`);
  }
  if (count === 0) return 0;
  let min = view.offset;
  let max = view.offset;
  for (let d = 0; d < shape.length; d++) {
    const s = view.strides[d];
    if (!Number.isSafeInteger(s)) throw new Error(`${kernel}: ${name} view stride ${s} is not an integer`);
    const reach = (shape[d] - 1) * s;
    if (reach < 0) min += reach;
    else max += reach;
  }
  if (min < 0 || max >= size) {
    throw new Error(
      `${kernel}: ${name} view reaches elements ${min}..${max} but the buffer has ${size} (shape [${shape.join(',')}], strides [${view.strides.join(',')}], offset ${view.offset})`,
    );
  }
  return count;
}

/** Whether a (simplified) view reads element i at index i. */
export function isIdentity(v: KernelView): boolean {
  return v.offset === 0 && v.shape.length === 1 && v.strides[0] === 1;
}
