/**
 * The reference CPU backend: plain TypeScript kernels (src/kernels/) on host typed arrays, GEMM
 * through the sgemm engine. Every call runs to completion before it returns, so `sync` has
 * nothing to wait for. This backend defines what each kernel means for the other backends.
 *
 * It is composed by core's `composeBackend`: core checks every argument, then calls the kernel
 * families of src/kernels/ (one object per family) or the memory management below.
 */
import type { Backend, BackendMemory, DType, MemoryParts, RawArray } from '@peft/core';
import { bytesPerElement, composeBackend, DTYPES, kernelTable } from '@peft/core';
import { CpuBuffer, type CpuContext, HostPool } from './buffer.js';
import { createSgemm, type GemmChoice, type GemmEngineInfo, type SgemmEngine } from './gemm/index.js';
import { envVar } from './gemm/platform.js';
import { CHUNK, CHUNK_SLOTS, elementwiseModule } from './kernels/elementwise-wasm.js';
import * as families from './kernels/index.js';
import { EXP_FRAC } from './kernels/math.js';
import { KernelPool, SHARED_MIN_BYTES } from './parallel.js';

export interface CpuBackendOptions {
  /** Threads of the GEMM engine (default: the cores available; the wasm engine takes at most 8). */
  threads?: number;
  /**
   * GEMM engine: 'auto' (default) the platform BLAS through FFI when one is found, else
   * WebAssembly SIMD, else plain TypeScript; 'blas' throws when no BLAS loads; 'wasm'; 'js'.
   */
  gemm?: GemmChoice;
  /**
   * Run the elementwise kernels on worker threads beside the calling thread, as many threads as
   * the GEMM engine's (default: true when that is more than one, unless the environment variable
   * PEFT_CPU_WORKERS is 0 or off).
   */
  workers?: boolean;
}

/** The CPU backend: `Backend` and the engines it runs on. */
export interface CpuBackend extends Backend, CpuContext {
  readonly name: 'cpu';
  readonly sgemm: SgemmEngine;
  /** Which GEMM engine runs, on how many threads, and why it was chosen. */
  readonly gemmEngine: GemmEngineInfo;
  /**
   * Worker threads that run the elementwise kernels beside the calling thread (as many threads
   * as the GEMM engine's), or null with one thread or where threads are unavailable. Buffers of
   * 256 KiB or more are then SharedArrayBuffers.
   */
  readonly pool: KernelPool | null;
}

/** What a freed buffer holds: nothing. */
const NO_DATA = new Float32Array(0);

/** Host memory: buffers from a pool of freed arrays, bytes and peak accounting (arguments checked by core). */
class CpuMemory implements MemoryParts<CpuBuffer> {
  private readonly live = new Set<CpuBuffer>();
  /** Memory of freed buffers, reused by later allocations of the same byte size. */
  private readonly hostPool = new HostPool();
  private bytes = 0;
  private peakBytes = 0;

  constructor(
    /** Every buffer's `owner`: the identity of this backend instance. */
    private readonly owner: object,
    private readonly ctx: CpuContext,
  ) {}

  alloc(dtype: DType, size: number): CpuBuffer {
    const bytes = size * bytesPerElement(dtype);
    let memory = this.hostPool.take(bytes, this.bytes, this.peakBytes);
    if (memory === undefined && this.ctx.pool !== null && bytes >= SHARED_MIN_BYTES) memory = new SharedArrayBuffer(bytes);
    const buf = new CpuBuffer(this.owner, dtype, size, memory);
    this.live.add(buf);
    this.bytes += buf.byteLength;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    return buf;
  }

  write(buf: CpuBuffer, data: RawArray, offset: number): void {
    (buf.data as Float32Array).set(data as Float32Array, offset);
  }

  read(buf: CpuBuffer): Promise<RawArray> {
    return Promise.resolve(buf.data.slice(0, buf.size));
  }

  free(buf: CpuBuffer): void {
    buf.freed = true;
    this.hostPool.give(buf.data);
    buf.data = NO_DATA;
    this.live.delete(buf);
    this.bytes -= buf.byteLength;
  }

  memory(): BackendMemory {
    // bytes and peakBytes count buffers handed out; pooledBytes is held on top of them for reuse.
    return { buffers: this.live.size, bytes: this.bytes, peakBytes: this.peakBytes, pooledBytes: this.hostPool.pooledBytes };
  }

  resetPeak(): void {
    this.peakBytes = this.bytes;
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  destroy(): void {
    for (const b of [...this.live]) this.free(b);
    this.hostPool.clear();
    this.ctx.pool?.destroy();
    this.ctx.sgemm.destroy();
  }
}

/** A new reference CPU backend; `threads` sizes the GEMM engine's worker pool. */
export function createCpuBackend(opts: CpuBackendOptions = {}): CpuBackend {
  const sgemm = createSgemm({
    ...(opts.threads === undefined ? {} : { threads: opts.threads }),
    ...(opts.gemm === undefined ? {} : { engine: opts.gemm }),
  });
  const env = envVar('PEFT_CPU_WORKERS');
  const workers = opts.workers ?? !(env === '0' || env === 'off');
  const pool = workers ? KernelPool.create(sgemm.info.threads, elementwiseModule(), EXP_FRAC, CHUNK_SLOTS, CHUNK) : null;
  const owner = {};
  // Without a context, kernels receive the backend itself: it is the CpuContext (sgemm and pool from the extras).
  const backend = composeBackend<CpuBuffer, CpuContext, CpuContext & { gemmEngine: GemmEngineInfo }>({
    name: 'cpu',
    dtypes: DTYPES,
    bufferClass: CpuBuffer,
    owner,
    memory: new CpuMemory(owner, { sgemm, pool }),
    kernels: kernelTable('cpu', families),
    extras: { sgemm, gemmEngine: sgemm.info, pool },
  });
  return backend as CpuBackend;
}
