/**
 * What the op families (one file per kernels/<family>.cu) need from the CUDA backend, and the
 * launch helpers they share. Their arguments are checked in core (kernelChecks) before they run.
 */
import type { Block } from '../allocator.js';
import type { CublasLt } from '../cublaslt.js';
import type { KernelView } from '../kernels.js';
import type { CudaRuntime } from '../runtime.js';

export interface Ctx {
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

/** Whether a (simplified) view reads element i at index i. */
export function isIdentity(v: KernelView): boolean {
  return v.offset === 0 && v.shape.length === 1 && v.strides[0] === 1;
}
