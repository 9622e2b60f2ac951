import { bytesPerElement, type DeviceBuffer, type DType, RAW_ARRAY, type RawArray } from '@peft/core';

/** Host memory of one tensor: float32 as Float32Array, float16/bfloat16 as raw bits in Uint16Array, int32 as Int32Array. */
export class CpuBuffer implements DeviceBuffer {
  data: RawArray;
  freed = false;

  constructor(
    /** The backend state that allocated this buffer; kernels refuse buffers of other backends. */
    readonly owner: object,
    readonly dtype: DType,
    readonly size: number,
    /** Memory of exactly size × bytesPerElement(dtype) bytes to use, as it is (a new, zeroed array when omitted). */
    memory?: ArrayBufferLike,
  ) {
    const Type = RAW_ARRAY[dtype];
    // A SharedArrayBuffer (backends with worker threads) reads and writes like an ArrayBuffer.
    this.data = memory === undefined ? new Type(size) : new Type(memory as ArrayBuffer, 0, size);
  }

  get byteLength(): number {
    return this.size * bytesPerElement(this.dtype);
  }
}

/** Arrays smaller than this are not pooled: allocating them is cheap. */
export const MIN_POOLED_BYTES = 4096;

/**
 * Freed host memory kept for reuse, keyed by exact byte length, so that a training step that
 * frees and allocates the same shapes as the step before reuses its arrays instead of asking the
 * allocator (and the kernel's page faults) for fresh ones. Reused memory is handed out as it was
 * left, not zeroed (the Backend contract: an allocation's contents are unspecified; zeroing cost
 * a pass over every reused array, several percent of a training step).
 *
 * The pool is capped: when a request misses, the arrays pooled longest ago are dropped (left to
 * the garbage collector) until what is handed out plus what is pooled, request included, is at
 * most 5/4 of max(peak, handed out after the request), where peak is the backend's peak of bytes
 * handed out (since creation or `resetPeak`). The quarter of slack lets a step whose shapes
 * change order still find all of them; without a pool, the arrays a step drops are garbage until
 * the next collection, which in a LoRA training loop held more memory than the pool does.
 */
export class HostPool {
  /** Bytes waiting in the pool. */
  pooledBytes = 0;
  private readonly free = new Map<number, ArrayBufferLike[]>();
  /** Every pooled array in the order it came back (a Set iterates in insertion order): the oldest first. */
  private readonly order = new Set<ArrayBufferLike>();

  /**
   * Memory of `bytes` bytes from the pool (holding what its last user left), or undefined (the caller allocates) after making
   * room for it. `live`: bytes handed out before this request; `peak`: the backend's peak of those.
   */
  take(bytes: number, live: number, peak: number): ArrayBufferLike | undefined {
    const memory = bytes < MIN_POOLED_BYTES ? undefined : this.free.get(bytes)?.pop();
    if (memory !== undefined) {
      this.order.delete(memory);
      this.pooledBytes -= bytes;
      return memory;
    }
    const room = 1.25 * Math.max(peak, live + bytes) - live - bytes;
    if (this.pooledBytes > room) this.drop(room);
    return undefined;
  }

  /** Takes back the memory of a freed buffer's array (small arrays are left to the garbage collector). */
  give(data: RawArray): void {
    const bytes = data.byteLength;
    if (bytes < MIN_POOLED_BYTES) return;
    const memory = data.buffer;
    let list = this.free.get(bytes);
    if (list === undefined) {
      list = [];
      this.free.set(bytes, list);
    }
    list.push(memory);
    this.order.add(memory);
    this.pooledBytes += bytes;
  }

  /** Drops every pooled array. */
  clear(): void {
    this.free.clear();
    this.order.clear();
    this.pooledBytes = 0;
  }

  /** Drops the arrays pooled longest ago until at most `limit` bytes remain. */
  private drop(limit: number): void {
    for (const memory of this.order) {
      if (this.pooledBytes <= limit) break;
      const list = this.free.get(memory.byteLength)!;
      list.splice(list.indexOf(memory), 1);
      if (list.length === 0) this.free.delete(memory.byteLength);
      this.order.delete(memory);
      this.pooledBytes -= memory.byteLength;
    }
  }
}

/**
 * What kernels receive first: the backend's GEMM engine and its worker threads. It is also every
 * buffer's `owner`, so it identifies the backend instance (core's checks refuse other owners).
 */
export interface CpuContext {
  readonly sgemm: import('./gemm/index.js').SgemmEngine;
  /** Worker threads for the elementwise kernels (null: the calling thread alone). */
  readonly pool: import('./parallel.js').KernelPool | null;
}
