/**
 * The WebGPU backend: every kernel of `Backend` in WGSL (src/kernels/, one file per op family,
 * forward and backward side by side), float32 compute, float16/bfloat16 storage two per word.
 * Work is recorded into command batches (see runtime.ts); only `read` and `sync` wait, and they
 * wait on promises (mapAsync, onSubmittedWorkDone), never blocking the event loop.
 *
 * It is composed by core's `composeBackend`: core checks every argument, then calls the kernel
 * families of src/kernels/ (one object per family) or the memory management below. What stays
 * here is what only WebGPU has: the device, its pooled buffers, device loss and the kernel forms.
 */
import type { Backend, BackendMemory, DType, MemoryParts, RawArray } from '@peft/core';
import { composeBackend, DTYPES, kernelTable } from '@peft/core';
import { paddedBytes, WebGpuBuffer } from './buffer.js';
import { type DeviceRequest, requestDevice } from './device.js';
import type { AttentionKind } from './kernels/attention.js';
import type { Ctx } from './kernels/common.js';
import * as families from './kernels/index.js';
import type { GemmKind } from './kernels/matmul.js';
import { GpuRuntime } from './runtime.js';

export interface WebGpuBackendOptions extends DeviceRequest {
  /** Your own GPUDevice; without it one is requested (navigator.gpu, or the `webgpu` package in Node). */
  device?: GPUDevice;
  /** Dispatches recorded before a batch is submitted without anyone waiting (default 64). */
  maxBatch?: number;
  /**
   * The GEMM kernel (see kernels/matmul.ts): `tiled` (workgroup memory, for GPUs) or `registers`
   * (no barriers, for adapters that run on the CPU). Default: `registers` on a fallback adapter
   * (SwiftShader and the like), else `tiled`.
   */
  gemm?: GemmKind;
  /**
   * The attention kernels (see kernels/attention.ts): `tiled` (a workgroup per row, for GPUs) or
   * `rows` (a thread per row, no barriers, for adapters that run on the CPU). Default: `rows` on
   * a fallback adapter, else `tiled`.
   */
  attention?: AttentionKind;
}

/** The WebGPU backend: `Backend`, the device it runs on and the kernel forms it picked. */
export interface WebGpuBackend extends Backend, Ctx {
  readonly name: 'webgpu';
  readonly device: GPUDevice;
  /** The object every buffer of this backend holds as `owner` (its kernel context). */
  readonly owner: object;
  /** Destroys the pooled (free) GPU buffers; `memory().pooledBytes` drops to 0. */
  trimPool(): void;
}

/** Whether the device runs on the CPU (a fallback adapter such as SwiftShader): barriers are emulated there. */
export function isCpuAdapter(device: GPUDevice): boolean {
  const info = (device as { adapterInfo?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).adapterInfo;
  return info?.isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe|warp/i.test(`${info?.architecture} ${info?.description}`);
}

/** Device memory: pooled GPUBuffers, the live set and the peak (arguments checked by core). */
class WebGpuMemory implements MemoryParts<WebGpuBuffer> {
  private readonly live = new Set<WebGpuBuffer>();
  private peakBytes = 0;
  destroyed = false;

  constructor(
    private readonly ctx: Ctx,
    /** The device to destroy with the backend, or null when the caller owns it. */
    private readonly ownedDevice: GPUDevice | null,
  ) {}

  alloc(dtype: DType, size: number): WebGpuBuffer {
    const bytes = Math.max(4, paddedBytes(dtype, size));
    const gpu = this.ctx.rt.acquire(bytes, `alloc(${dtype}, ${size})`);
    const buf = new WebGpuBuffer(this.ctx, dtype, size, gpu, gpu.size);
    this.live.add(buf);
    const held = this.ctx.rt.memory().bytes;
    if (held > this.peakBytes) this.peakBytes = held;
    return buf;
  }

  write(buf: WebGpuBuffer, data: RawArray, offset: number): void {
    this.ctx.rt.write(buf, data, offset);
  }

  read(buf: WebGpuBuffer): Promise<RawArray> {
    return this.ctx.rt.read(buf);
  }

  free(buf: WebGpuBuffer): void {
    buf.freed = true;
    this.live.delete(buf);
    this.ctx.rt.release(buf.gpu);
  }

  memory(): BackendMemory {
    const m = this.ctx.rt.memory();
    return { buffers: this.live.size, bytes: m.bytes, peakBytes: Math.max(this.peakBytes, m.bytes), pooledBytes: m.pooledBytes };
  }

  resetPeak(): void {
    this.peakBytes = this.ctx.rt.memory().bytes;
  }

  sync(): Promise<void> {
    return this.ctx.rt.sync();
  }

  destroy(): void {
    this.ctx.rt.flush();
    for (const b of this.live) {
      b.freed = true;
      b.gpu.destroy();
    }
    this.live.clear();
    this.ctx.rt.destroy();
    this.destroyed = true;
    this.ownedDevice?.destroy();
  }

  /** Throws when the backend was destroyed or its device lost: called by core before every kernel and memory call. */
  alive(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this webgpu backend was destroyed: create a new one`);
    this.ctx.rt.checkAlive(what);
  }
}

/**
 * A WebGPU backend on `opts.device`, or on a device it requests: navigator.gpu in a browser, the
 * `webgpu` package (Dawn) in Node. Rejects with an explanation when no adapter is available.
 */
export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  if (opts.gemm !== undefined && opts.gemm !== 'tiled' && opts.gemm !== 'registers') {
    throw new Error(`createWebGpuBackend: gemm must be 'tiled' or 'registers', got ${JSON.stringify(opts.gemm)}`);
  }
  if (opts.attention !== undefined && opts.attention !== 'tiled' && opts.attention !== 'rows') {
    throw new Error(`createWebGpuBackend: attention must be 'tiled' or 'rows', got ${JSON.stringify(opts.attention)}`);
  }
  const device = opts.device ?? (await requestDevice(opts));
  const cpu = isCpuAdapter(device);
  const ctx: Ctx = {
    rt: new GpuRuntime(device, opts.maxBatch),
    gemm: opts.gemm ?? (cpu ? 'registers' : 'tiled'),
    attentionKind: opts.attention ?? (cpu ? 'rows' : 'tiled'),
    rowThreads: cpu ? 4 : 256,
  };
  const memory = new WebGpuMemory(ctx, opts.device === undefined ? device : null);
  const backend = composeBackend({
    name: 'webgpu',
    dtypes: DTYPES,
    bufferClass: WebGpuBuffer,
    owner: ctx,
    context: ctx,
    alive: (what) => memory.alive(what),
    memory,
    kernels: kernelTable('webgpu', families),
    extras: { ...ctx, device, owner: ctx, trimPool: () => ctx.rt.storage.trim() },
  });
  return backend as WebGpuBackend;
}
