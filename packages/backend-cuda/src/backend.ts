/**
 * The CUDA backend: every kernel of `Backend` in CUDA C++ (kernels/*.cu, one file per op family,
 * forward and backward side by side), compiled ahead of time into fatbins and launched through
 * the driver API; GEMMs through cuBLASLt when it can be found (the tiled kernel otherwise).
 * float32 compute; float32, float16, bfloat16 and int32 storage. All work runs on one stream in
 * order; only `read` and `sync` wait, by polling an event from the event loop.
 *
 * It is composed by core's `composeBackend`: core checks every argument, then calls this file's
 * memory management (the caching allocator, the stream, graph capture) or the op families' host
 * sides in src/kernels/<family>.ts (which kernel variant runs, grid and launch arguments), the
 * twins of kernels/<family>.cu. This file also sets up cuBLASLt.
 *
 * Where the GPU cannot throw: an embedding id outside the table reads zeros (and its gradient is
 * dropped), a cross-entropy target that is neither a class nor ignoreIndex gives NaN, float →
 * int32 copies truncate and saturate (NaN → 0).
 */
import type { Backend, BackendMemory, CaptureOptions, DType, MemoryParts, RawArray } from '@peft/core';
import { bytesPerElement, composeBackend, DTYPES, kernelTable, RAW_ARRAY } from '@peft/core';
import type { AllocatorStats } from './allocator.js';
import { CudaBuffer } from './buffer.js';
import { CublasLt, formatLtVersion, type GemmFallback } from './cublaslt.js';
import type { Ctx } from './kernels/common.js';
import * as families from './kernels/index.js';
import { CudaRuntime, type DeviceInfo } from './runtime.js';

export interface CudaBackendOptions {
  /** Which GPU (CUDA device ordinal; default 0). */
  deviceIndex?: number;
  /** GEMMs through cuBLASLt when it can be loaded (default true); false uses the tiled kernel always. */
  cublas?: boolean;
  /** float32 GEMMs on TF32 tensor cores (faster, about 10 bits of mantissa; default false). */
  allowTf32?: boolean;
  /** cuBLASLt workspace (default 32 MiB). */
  workspaceBytes?: number;
  /**
   * Attention on tensor cores (mma.sync) where it applies: q, k and v of one 16-bit dtype,
   * headDim 64 or 128, a GPU of compute capability 8.0 or newer (default true). false keeps
   * the float32 CUDA-core kernels, which serve every other case.
   */
  tensorCores?: boolean;
  /**
   * A 16-bit operand against a float32 one with a side of at most 64 (LoRA's x · Aᵀ and dA =
   * dhᵀ · x, bfloat16 activations against float32 adapters) on the backend's own kernels, which
   * read the 16-bit operand once (default true). false widens it into a float32 copy for
   * cuBLASLt, as every other mixed GEMM.
   */
  mixedKernels?: boolean;
}

/** memoryStats(): the caching allocator's bytes (see allocator.ts) and the device's. */
export interface CudaMemoryStats extends AllocatorStats {
  /** Bytes the device reports free and in total (cuMemGetInfo). */
  deviceFree: number;
  deviceTotal: number;
}

export interface CudaGraph {
  /** Replays the captured kernels on the backend's stream (asynchronous, like any kernel). */
  launch(): void;
  /** Releases the graph and the buffers it allocated during capture. */
  destroy(): void;
}

/** The CUDA backend: `Backend`, graph capture, and what it runs on. */
export interface CudaBackend extends Backend {
  readonly name: 'cuda';
  readonly rt: CudaRuntime;
  /** cuBLASLt, or null when not found (then `gemmLibrary` says why). */
  readonly lt: CublasLt | null;
  /** Which GEMM runs: the cuBLASLt path, or why the tiled kernel is used. */
  readonly gemmLibrary: string;
  /**
   * GEMM shapes that cuBLASLt did not take, each decided once and then run on the tiled kernel:
   * the heuristic offered no algorithm, or cublasLtMatmul refused every algorithm it offered
   * (CUBLAS_STATUS_NOT_SUPPORTED / INVALID_VALUE). `shape` is like "bf16 m=128 n=4096 k=4096
   * batch=1 transA=0 transB=1"; empty when none (and always without cuBLASLt).
   */
  readonly gemmFallbacks: readonly GemmFallback[];
  /** Matmul calls per path since creation (tests and benchmarks read them). */
  readonly gemmCounts: { cublasLt: number; tiled: number; skinny: number };
  /** Whether attention uses the tensor-core kernels where they apply (see CudaBackendOptions.tensorCores). */
  readonly tensorCores: boolean;
  /** Whether LoRA's mixed-dtype GEMMs run on the skinny kernels (see CudaBackendOptions.mixedKernels). */
  readonly mixedKernels: boolean;
  /** The GPU this backend runs on. */
  readonly device: DeviceInfo;
  /** Kernel launches by kernel name since creation (graph replays not counted): which paths a workload took. */
  kernelLaunches(): Record<string, number>;
  /** The caching allocator's numbers (current, peak, reserved, pooled, …) and the device's free/total bytes. */
  memoryStats(): CudaMemoryStats;
  /** Gives the pooled (free) device blocks back to the driver; waits for the stream. */
  trimPool(): void;
  /**
   * Captures the kernels `step` enqueues into a CUDA graph that `launch()` replays with one
   * driver call. The step must be deterministic in its launches: the same kernels on the same
   * buffers every time (write new inputs into the captured input buffers before each launch);
   * no read, write or sync inside. Buffers it allocates belong to the graph until `destroy()`.
   * The shared pool's free blocks are given back to the driver first (waiting for the stream), so
   * that the graph's own pool takes their place instead of adding to them: an eager warm-up step
   * followed by a capture then reserves about what one step needs, not twice that. With
   * `shareMemoryWith` (a live graph of this backend) the capture allocates from that graph's pool,
   * reusing the blocks its capture freed: graphs launched one after another need the memory of
   * the largest, not the sum; the pool is released with the last graph that uses it.
   */
  captureGraph(step: () => void, options?: CaptureOptions): CudaGraph;
}

/** Device memory through the caching allocator, the stream's reads and waits, graph capture (arguments checked by core). */
class CudaMemory implements MemoryParts<CudaBuffer> {
  private readonly live = new Set<CudaBuffer>();
  /** Set by destroy(); every later call but free(), memory() and resetPeak() is refused (see `alive`). */
  private destroyed = false;

  constructor(private readonly ctx: Ctx) {}

  /** Throws when the backend was destroyed or the device faulted; called first by every kernel and memory call. */
  alive(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this cuda backend was destroyed: create a new one`);
    this.ctx.rt.alive(what);
  }

  alloc(dtype: DType, size: number): CudaBuffer {
    const buf = new CudaBuffer(this.ctx, dtype, size, this.ctx.rt.alloc(size * bytesPerElement(dtype)));
    this.live.add(buf);
    return buf;
  }

  write(buf: CudaBuffer, data: RawArray, offset: number): void {
    this.ctx.rt.upload(buf.ptr + offset * bytesPerElement(buf.dtype), data);
  }

  async read(buf: CudaBuffer): Promise<RawArray> {
    const bytes = await this.ctx.rt.download(buf.ptr, buf.byteLength);
    return new RAW_ARRAY[buf.dtype](bytes.buffer as ArrayBuffer);
  }

  free(buf: CudaBuffer): void {
    buf.freed = true;
    this.live.delete(buf);
    this.ctx.rt.release(buf.block);
  }

  memory(): BackendMemory {
    const s = this.ctx.rt.stats();
    return { buffers: this.live.size, bytes: s.reserved, peakBytes: s.peakReserved, pooledBytes: s.pooled };
  }

  resetPeak(): void {
    this.ctx.rt.allocator.resetPeak();
  }

  async sync(): Promise<void> {
    await this.ctx.rt.sync();
  }

  captureGraph(step: () => void, options: CaptureOptions = {}): CudaGraph {
    // Checked before trim(), whose wait for the stream would invalidate the capture in progress.
    if (this.ctx.rt.capturing) throw new Error('captureGraph: a capture is already in progress');
    this.ctx.rt.trim();
    return this.ctx.rt.capture(step, options.shareMemoryWith);
  }

  /**
   * Releases cuBLASLt, then the runtime (memory, modules, stream, context: see CudaRuntime.destroy,
   * which tries every step and always releases the context). Throws once, after all of it, with
   * every failure; after a GPU fault already reported by a read or sync, failed frees are expected
   * and do not throw.
   */
  destroy(): void {
    for (const b of this.live) b.freed = true;
    this.live.clear();
    this.destroyed = true;
    let ltFailed: string[] = [];
    try {
      this.ctx.rt.makeCurrent();
      ltFailed = this.ctx.lt?.destroy() ?? [];
    } catch (err) {
      ltFailed = [(err as Error).message.split('\n')[0]!];
    }
    this.ctx.rt.destroy(ltFailed.map((f) => `cuBLASLt ${f}`));
  }
}

/**
 * cuBLASLt with its workspace (a block of the allocator, released by the runtime's destroy), or
 * why there is none. `gemmLibrary` names the file loaded (full path and version), or every place
 * searched when none loaded.
 */
function loadCublas(rt: CudaRuntime, opts: CudaBackendOptions): { lt: CublasLt | null; gemmLibrary: string } {
  if (opts.cublas === false) return { lt: null, gemmLibrary: 'tiled kernel (cublas: false)' };
  const bytes = opts.workspaceBytes ?? 32 * 2 ** 20;
  const workspace = rt.alloc(bytes);
  const found = CublasLt.load(rt.d.koffi, rt.info.driverVersion, rt.stream, { ptr: workspace.ptr, bytes }, opts.allowTf32 ?? false);
  if (found.lt) {
    const { version, path } = found.lt;
    return { lt: found.lt, gemmLibrary: `cuBLASLt ${formatLtVersion(version)} (cublasLtGetVersion ${version}) from ${path}` };
  }
  rt.release(workspace);
  const { python } = found;
  const pythonText = python.python
    ? `the site-packages of ${python.python}: ${python.dirs.join(', ') || 'none'}`
    : `no Python answered (${python.errors.join('; ')})`;
  const couldNotLoad = found.errors.length ? `; could not load: ${found.errors.join('; ')}` : '';
  return {
    lt: null,
    gemmLibrary:
      `tiled kernel: no cuBLASLt found. Looked for ${found.names.join(', ')} in ${found.searched.join(', ')} ` +
      `(folders from LD_LIBRARY_PATH, CUDA_HOME/CUDA_PATH, ${pythonText}, and fixed prefixes), then in the loader's default search${couldNotLoad}. ` +
      "Set LD_LIBRARY_PATH or CUDA_HOME to a folder with libcublasLt, point PEFT_BENCH_PYTHON at a Python with PyTorch's CUDA wheels, or pip install nvidia-cublas-cu12",
  };
}

/**
 * A CUDA backend on GPU `deviceIndex` (default 0). Throws when there is no usable driver or GPU:
 * call `isAvailable()` first to learn why without an exception.
 */
export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  const rt = new CudaRuntime(opts.deviceIndex ?? 0);
  const mixedKernels = opts.mixedKernels ?? true;
  const tensorCores = (opts.tensorCores ?? true) && rt.info.computeCapability[0] >= 8;
  const { lt, gemmLibrary } = loadCublas(rt, opts);
  const gemmCounts = { cublasLt: 0, tiled: 0, skinny: 0 };
  const ctx: Ctx = { rt, lt, gemmCounts, tensorCores, mixedKernels };
  const memory = new CudaMemory(ctx);
  const alive = (what: string): void => memory.alive(what);
  const backend = composeBackend({
    name: 'cuda',
    dtypes: DTYPES,
    bufferClass: CudaBuffer,
    owner: ctx,
    context: ctx,
    alive,
    memory,
    kernels: kernelTable('cuda', families),
    extras: {
      rt,
      lt,
      gemmLibrary,
      gemmFallbacks: lt?.fallbacks ?? [],
      gemmCounts,
      tensorCores,
      mixedKernels,
      device: rt.info,
      kernelLaunches: (): Record<string, number> => Object.fromEntries(rt.launchCounts),
      memoryStats(): CudaMemoryStats {
        alive('memoryStats');
        const free = [0];
        const total = [0];
        rt.d.cuMemGetInfo(free, total);
        return { ...rt.stats(), deviceFree: Number(free[0]), deviceTotal: Number(total[0]) };
      },
      trimPool(): void {
        alive('trimPool');
        rt.trim();
      },
    },
  });
  return backend as CudaBackend;
}
