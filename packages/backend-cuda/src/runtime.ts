/**
 * One device, one stream: the primary context, the fatbin modules (loaded per op family on first
 * use), kernel launches with packed arguments, the caching allocator, pinned staging buffers for
 * uploads and reads, event polling (reads and sync never block the event loop), and CUDA-graph
 * capture.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type AllocatorStats, type Block, CachingAllocator } from './allocator.js';
import {
  ATTR,
  CAPTURE_MODE_RELAXED,
  CUDA_ERROR_NOT_READY,
  CUDA_SUCCESS,
  CudaError,
  CudaUnavailable,
  check,
  type Driver,
  EVENT_DISABLE_TIMING,
  errorText,
  FUNC_ATTR_MAX_DYNAMIC_SHARED,
  loadDriver,
  type Ptr,
  STICKY_ERRORS,
  STREAM_NON_BLOCKING,
} from './driver.js';
import { KERNELS, type KernelName, type ParamValue, packArgs } from './kernels.js';

/** Where the fatbins live: <package>/fatbin/, next to src/ and dist/. */
export const FATBIN_DIR = fileURLToPath(new URL('../fatbin/', import.meta.url));

/** The fatbin folder in use: PEFT_CUDA_FATBIN_DIR (kernels built elsewhere; the tests' stand-ins) or FATBIN_DIR. */
export function fatbinDir(): string {
  const dir = process.env.PEFT_CUDA_FATBIN_DIR;
  return dir ? (dir.endsWith('/') ? dir : `${dir}/`) : FATBIN_DIR;
}

export interface Manifest {
  nvcc: string;
  archs: string[];
  ptx: string;
  totalBytes: number;
  families: Record<string, { hash: string; kernels: Record<string, string[]>; bytes: number }>;
}

/** fatbin/manifest.json, or null when the kernels were never built. */
export function readManifest(): Manifest | null {
  try {
    return JSON.parse(readFileSync(`${fatbinDir()}manifest.json`, 'utf8')) as Manifest;
  } catch {
    return null;
  }
}

export interface DeviceInfo {
  index: number;
  name: string;
  computeCapability: [number, number];
  multiprocessors: number;
  totalBytes: number;
  driverVersion: number;
  maxSharedOptin: number;
}

let currentCtx: Ptr = null;

interface Pinned {
  ptr: Ptr;
  bytes: number;
  view: Uint8Array;
}

const ARG_BYTES = 4096;

export class CudaRuntime {
  readonly d: Driver;
  readonly info: DeviceInfo;
  readonly allocator: CachingAllocator;
  private readonly ctx: Ptr;
  private readonly dev: number;
  readonly stream: Ptr;
  private readonly modules = new Map<string, Ptr>();
  private readonly fns = new Map<string, { fn: Ptr; smem: number }>();
  private readonly argMem: Ptr;
  private readonly argView: DataView;
  private readonly argAddr: bigint;
  private readonly events: Ptr[] = [];
  private readonly pinnedFree: Pinned[] = [];
  private readonly pinnedBusy: { block: Pinned; event: Ptr }[] = [];
  private pinnedBytes = 0;
  private capturingPool = 0;
  private nextPool = 1;
  /** The private pool of each live graph (several graphs may share one: captureGraph's shareMemoryWith). */
  private readonly graphPools = new WeakMap<object, number>();
  /** Live graphs per private pool. */
  private readonly poolRefs = new Map<number, number>();
  private destroyed = false;
  /** An asynchronous error seen by an event query: every later call throws it. */
  private sticky: Error | null = null;

  constructor(deviceIndex: number) {
    this.d = loadDriver();
    const d = this.d;
    const count = [0];
    check(d, d.cuDeviceGetCount(count), 'cuDeviceGetCount');
    if (count[0] === 0) throw new CudaUnavailable('the CUDA driver sees no GPU (cuDeviceGetCount = 0)');
    if (!Number.isInteger(deviceIndex) || deviceIndex < 0 || deviceIndex >= count[0]) {
      throw new Error(
        `createCudaBackend: deviceIndex ${deviceIndex} does not exist: this machine has ${count[0]} GPU(s), 0..${count[0] - 1}`,
      );
    }
    const dev = [0];
    check(d, d.cuDeviceGet(dev, deviceIndex), 'cuDeviceGet');
    this.dev = dev[0];
    this.info = deviceInfo(d, dev[0], deviceIndex);
    const ctx: Ptr[] = [null];
    check(d, d.cuDevicePrimaryCtxRetain(ctx, dev[0]), 'cuDevicePrimaryCtxRetain');
    this.ctx = ctx[0];
    this.makeCurrent();
    const stream: Ptr[] = [null];
    const rc = d.cuStreamCreate(stream, STREAM_NON_BLOCKING);
    if (rc !== CUDA_SUCCESS) {
      d.cuDevicePrimaryCtxRelease(dev[0]); // not kept: no backend holds it
      check(d, rc, 'cuStreamCreate');
    }
    this.stream = stream[0];
    this.argMem = d.koffi.alloc('uint8_t', ARG_BYTES);
    this.argView = new DataView(d.koffi.view(this.argMem, ARG_BYTES));
    this.argAddr = BigInt(d.koffi.address(this.argMem));
    this.allocator = new CachingAllocator(
      {
        alloc: (bytes) => {
          const p = [0];
          const rc = d.cuMemAlloc(p, bytes);
          if (rc !== CUDA_SUCCESS && STICKY_ERRORS.has(rc)) this.check(rc, `cuMemAlloc(${bytes} bytes)`);
          if (rc !== CUDA_SUCCESS) throw new CudaError(rc, 'cuMemAlloc', `cuMemAlloc(${bytes} bytes) failed: ${errorText(d, rc)}`);
          return Number(p[0]);
        },
        free: (ptr) => {
          // cuMemFree waits for the device: during a capture that would invalidate it.
          if (this.capturingPool)
            throw new Error(`cuMemFree(0x${ptr.toString(16)}): cannot free device memory while a CUDA graph is being captured`);
          this.check(d.cuMemFree(ptr), 'cuMemFree');
        },
      },
      () => this.syncBlocking('alloc (out-of-memory retry)'),
    );
  }

  makeCurrent(): void {
    if (currentCtx !== this.ctx) {
      this.check(this.d.cuCtxSetCurrent(this.ctx), 'cuCtxSetCurrent');
      currentCtx = this.ctx;
    }
  }

  alive(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this cuda backend was destroyed: create a new one`);
    if (this.sticky) throw new Error(`${what}: the CUDA context failed earlier and cannot be used: ${this.sticky.message}`);
    this.makeCurrent();
  }

  // --- memory -------------------------------------------------------------------------------------

  alloc(bytes: number): Block {
    return this.allocator.alloc(Math.max(bytes, 4));
  }

  release(block: Block): void {
    if (!this.destroyed) this.allocator.release(block);
  }

  stats(): AllocatorStats {
    return this.allocator.stats();
  }

  /** Frees the pooled blocks (waits for the stream: they may still be in use by enqueued work). */
  trim(): void {
    this.syncBlocking('trimPool');
    this.allocator.trim();
  }

  // --- kernels --------------------------------------------------------------------------------------

  private fn(name: KernelName, smem: number): Ptr {
    let entry = this.fns.get(name);
    if (!entry) {
      const family = KERNELS[name].family;
      let mod = this.modules.get(family);
      if (mod === undefined) {
        let image: Buffer;
        try {
          image = readFileSync(`${fatbinDir()}${family}.fatbin`);
        } catch {
          throw new Error(
            `the CUDA kernels of family "${family}" are missing (${fatbinDir()}${family}.fatbin): build them with \`pnpm --filter @peft/backend-cuda build:kernels\` (needs nvcc), or reinstall the package`,
          );
        }
        const out: Ptr[] = [null];
        this.check(
          this.d.cuModuleLoadData(out, image),
          `cuModuleLoadData(${family}.fatbin)`,
          `the fatbin has SASS for ${readManifest()?.archs.join(', ') ?? 'sm_80-sm_90'} and PTX for newer GPUs; this GPU is sm_${this.info.computeCapability.join('')}, driver ${this.info.driverVersion} (PTX from CUDA 13 needs a CUDA 13 driver)`,
        );
        mod = out[0];
        this.modules.set(family, mod);
      }
      const fn: Ptr[] = [null];
      this.check(this.d.cuModuleGetFunction(fn, mod, name), `cuModuleGetFunction(${name})`);
      entry = { fn: fn[0], smem: 48 * 1024 };
      this.fns.set(name, entry);
    }
    if (smem > entry.smem) {
      if (smem > this.info.maxSharedOptin) {
        throw new Error(`${name}: needs ${smem} bytes of shared memory, this GPU allows ${this.info.maxSharedOptin} per block`);
      }
      this.check(this.d.cuFuncSetAttribute(entry.fn, FUNC_ATTR_MAX_DYNAMIC_SHARED, smem), `cuFuncSetAttribute(${name})`);
      entry.smem = smem;
    }
    return entry.fn;
  }

  /** Launches per kernel since creation (graph replays not counted). */
  readonly launchCounts = new Map<KernelName, number>();

  launch(
    name: KernelName,
    grid: [number, number?, number?],
    block: [number, number?, number?],
    smem: number,
    args: readonly ParamValue[],
  ): void {
    const [gx, gy = 1, gz = 1] = grid;
    const [bx, by = 1, bz = 1] = block;
    if (gx === 0 || gy === 0 || gz === 0) return;
    if (gx > 2147483647 || gy > 65535 || gz > 65535) throw new Error(`${name}: grid ${gx}×${gy}×${gz} is larger than CUDA allows`);
    const fn = this.fn(name, smem);
    this.launchCounts.set(name, (this.launchCounts.get(name) ?? 0) + 1);
    const v = this.argView;
    const size = packArgs(new DataView(v.buffer, v.byteOffset, 3072), name, KERNELS[name].params, args);
    // extra = { CU_LAUNCH_PARAM_BUFFER_POINTER, args, CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END }
    v.setBigUint64(3072, BigInt(size), true);
    v.setBigUint64(3080, 1n, true);
    v.setBigUint64(3088, this.argAddr, true);
    v.setBigUint64(3096, 2n, true);
    v.setBigUint64(3104, this.argAddr + 3072n, true);
    v.setBigUint64(3112, 0n, true);
    this.check(this.d.cuLaunchKernel(fn, gx, gy, gz, bx, by, bz, smem, this.stream, null, this.argAddr + 3080n), `cuLaunchKernel(${name})`);
  }

  memsetD32(ptr: number, value: number, count: number): void {
    if (count > 0) this.check(this.d.cuMemsetD32Async(ptr, value >>> 0, count, this.stream), 'cuMemsetD32Async');
  }

  memsetD16(ptr: number, value: number, count: number): void {
    if (count > 0) this.check(this.d.cuMemsetD16Async(ptr, value & 0xffff, count, this.stream), 'cuMemsetD16Async');
  }

  copyDtoD(dst: number, src: number, bytes: number): void {
    if (bytes > 0) this.check(this.d.cuMemcpyDtoDAsync(dst, src, bytes, this.stream), 'cuMemcpyDtoDAsync');
  }

  // --- host transfers -----------------------------------------------------------------------------

  /** Uploads through a pinned staging buffer, so the copy is truly asynchronous. */
  upload(dst: number, data: ArrayBufferView): void {
    if (this.capturingPool)
      throw new Error('write: cannot upload while a CUDA graph is being captured: write the inputs before capture or replay');
    const bytes = data.byteLength;
    if (bytes === 0) return;
    const block = this.pinned(bytes);
    block.view.set(new Uint8Array(data.buffer, data.byteOffset, bytes));
    this.check(this.d.cuMemcpyHtoDAsync(dst, block.ptr, bytes, this.stream), 'cuMemcpyHtoDAsync');
    const event = this.event();
    this.check(this.d.cuEventRecord(event, this.stream), 'cuEventRecord');
    this.pinnedBusy.push({ block, event });
  }

  /** Downloads `bytes` from `src` and resolves with a copy, polling an event (never blocking). */
  async download(src: number, bytes: number): Promise<Uint8Array> {
    if (this.capturingPool) throw new Error('read: cannot read while a CUDA graph is being captured');
    const out = new Uint8Array(bytes);
    if (bytes === 0) return out;
    const block = this.pinned(bytes);
    this.check(this.d.cuMemcpyDtoHAsync(block.ptr, src, bytes, this.stream), 'cuMemcpyDtoHAsync');
    const event = this.event();
    this.check(this.d.cuEventRecord(event, this.stream), 'cuEventRecord');
    try {
      await this.wait(event, 'read');
      out.set(block.view.subarray(0, bytes));
    } finally {
      this.events.push(event);
      this.pinnedFree.push(block);
    }
    return out;
  }

  /** Resolves when everything enqueued so far has run; rejects with an asynchronous CUDA error. */
  async sync(): Promise<void> {
    if (this.capturingPool) throw new Error('sync: cannot wait while a CUDA graph is being captured');
    const event = this.event();
    this.check(this.d.cuEventRecord(event, this.stream), 'cuEventRecord');
    try {
      await this.wait(event, 'sync');
    } finally {
      this.events.push(event);
    }
    this.reclaimPinned();
  }

  /**
   * Blocks the thread until the stream is idle (only where waiting is unavoidable: OOM retry,
   * trim, graph.destroy, pinning more memory). Refused during a graph capture, where waiting for
   * the stream invalidates the capture: `what` names the caller in the error.
   */
  syncBlocking(what: string): void {
    if (this.capturingPool) {
      throw new Error(
        `${what}: would wait for the stream (cuStreamSynchronize) while a CUDA graph is being captured, which invalidates the capture: call it before captureGraph or after the step`,
      );
    }
    const rc = this.d.cuStreamSynchronize(this.stream);
    if (rc !== CUDA_SUCCESS) this.fail(new CudaError(rc, 'cuStreamSynchronize', `cuStreamSynchronize failed: ${errorText(this.d, rc)}`));
  }

  private async wait(event: Ptr, what: string): Promise<void> {
    for (let i = 0; ; i++) {
      const rc = this.d.cuEventQuery(event);
      if (rc === CUDA_SUCCESS) return;
      if (rc !== CUDA_ERROR_NOT_READY) {
        const err = new CudaError(rc, 'cuEventQuery', `${what}: the GPU reported an error in earlier work: ${errorText(this.d, rc)}`);
        this.fail(err);
        throw err;
      }
      // Yield to the event loop: at once for the first polls, then at most every 1 ms.
      await new Promise<void>((resolve) => (i < 64 ? setImmediate(resolve) : setTimeout(resolve, Math.min(1, (i - 64) / 64))));
    }
  }

  /**
   * Throws a CudaError naming the call unless rc is CUDA_SUCCESS. A fault that poisons the context
   * (STICKY_ERRORS: any later call answers it) also marks this runtime failed, as an asynchronous
   * error seen by a read or sync does: every later call throws it, and destroy() knows.
   */
  private check(rc: number, call: string, hint = ''): void {
    if (rc === CUDA_SUCCESS) return;
    if (STICKY_ERRORS.has(rc)) {
      const err = new CudaError(
        rc,
        call,
        `${call}: the GPU reported an error in earlier work: ${errorText(this.d, rc)}; the CUDA context cannot be used any more: destroy() this backend and create a new one`,
      );
      this.fail(err);
      throw err;
    }
    check(this.d, rc, call, hint);
  }

  private fail(err: Error): void {
    this.sticky ??= err;
  }

  private event(): Ptr {
    const e = this.events.pop();
    if (e !== undefined) return e;
    const out: Ptr[] = [null];
    this.check(this.d.cuEventCreate(out, EVENT_DISABLE_TIMING), 'cuEventCreate');
    return out[0];
  }

  private reclaimPinned(): void {
    let w = 0;
    for (const entry of this.pinnedBusy) {
      if (this.d.cuEventQuery(entry.event) === CUDA_SUCCESS) {
        this.pinnedFree.push(entry.block);
        this.events.push(entry.event);
      } else {
        this.pinnedBusy[w++] = entry;
      }
    }
    this.pinnedBusy.length = w;
  }

  /** A pinned host block of at least `bytes` (power-of-two classes from 64 KiB). */
  private pinned(bytes: number): Pinned {
    this.reclaimPinned();
    const size = Math.max(65536, 2 ** Math.ceil(Math.log2(bytes)));
    const i = this.pinnedFree.findIndex((p) => p.bytes === size);
    if (i >= 0) return this.pinnedFree.splice(i, 1)[0];
    if (this.pinnedBytes + size > 512 * 2 ** 20 && this.pinnedBusy.length > 0) {
      // Far ahead of the GPU: wait for the uploads in flight before pinning more host memory.
      this.syncBlocking('write');
      this.reclaimPinned();
      const j = this.pinnedFree.findIndex((p) => p.bytes === size);
      if (j >= 0) return this.pinnedFree.splice(j, 1)[0];
    }
    const out: Ptr[] = [null];
    this.check(this.d.cuMemAllocHost(out, size), `cuMemAllocHost(${size})`);
    this.pinnedBytes += size;
    return { ptr: out[0], bytes: size, view: new Uint8Array(this.d.koffi.view(out[0], size)) };
  }

  // --- CUDA graphs ------------------------------------------------------------------------------------

  /** True while `capture` records a graph. */
  get capturing(): boolean {
    return this.capturingPool !== 0;
  }

  /**
   * Captures the kernels `fn` enqueues into a CUDA graph. Buffers allocated during capture
   * belong to the graph (see allocator.ts) until `destroy`.
   */
  capture(fn: () => void, shareMemoryWith?: object): { launch(): void; destroy(): void } {
    if (this.capturingPool) throw new Error('captureGraph: a capture is already in progress');
    const shared = shareMemoryWith === undefined ? undefined : this.graphPools.get(shareMemoryWith);
    if (shareMemoryWith !== undefined && shared === undefined) {
      throw new Error('captureGraph: shareMemoryWith is not a live graph of this backend (destroyed, or captured by another one)');
    }
    this.check(this.d.cuStreamBeginCapture(this.stream, CAPTURE_MODE_RELAXED), 'cuStreamBeginCapture');
    const pool = shared ?? this.nextPool++;
    this.capturingPool = pool;
    this.allocator.activePool = pool;
    this.allocator.reuseAnyFree = shared !== undefined;
    let failure: { error: unknown } | null = null;
    try {
      fn();
    } catch (error) {
      failure = { error };
    }
    if (this.destroyed) throw new Error('captureGraph: the backend was destroyed during the capture; the graph was dropped');
    this.capturingPool = 0;
    this.allocator.activePool = 0;
    this.allocator.reuseAnyFree = false;
    const out: Ptr[] = [null];
    const rc = this.d.cuStreamEndCapture(this.stream, out);
    const graph = out[0];
    if (failure) {
      // The step's own error is the one to report; the partial graph never ran. Blocks the step
      // still holds stay with it (freed by destroy()); the graph goes.
      if (rc === CUDA_SUCCESS && graph !== null) this.d.cuGraphDestroy(graph);
      throw failure.error;
    }
    if (rc !== CUDA_SUCCESS) {
      // A pool other graphs share stays theirs.
      if (shared === undefined) this.allocator.releasePool(pool);
      throw new CudaError(
        rc,
        'cuStreamEndCapture',
        `captureGraph: the capture failed: ${errorText(this.d, rc)} (something in the step waited for the stream or used another stream)`,
      );
    }
    const exec: Ptr[] = [null];
    this.check(this.d.cuGraphInstantiate(exec, graph, 0), 'cuGraphInstantiate');
    let alive = true;
    this.poolRefs.set(pool, (this.poolRefs.get(pool) ?? 0) + 1);
    const handle = {
      launch: () => {
        if (!alive) throw new Error('graph.launch: this graph was destroyed');
        this.alive('graph.launch');
        this.check(this.d.cuGraphLaunch(exec[0], this.stream), 'cuGraphLaunch');
      },
      destroy: () => {
        if (!alive) return;
        if (this.destroyed) {
          alive = false;
          return;
        }
        this.syncBlocking('graph.destroy');
        alive = false;
        this.d.cuGraphExecDestroy(exec[0]);
        this.d.cuGraphDestroy(graph);
        this.graphPools.delete(handle);
        // The memory goes with the last graph that shares it.
        const refs = (this.poolRefs.get(pool) ?? 1) - 1;
        if (refs > 0) this.poolRefs.set(pool, refs);
        else {
          this.poolRefs.delete(pool);
          this.allocator.releasePool(pool);
        }
      },
    };
    this.graphPools.set(handle, pool);
    return handle;
  }

  /**
   * Releases everything this runtime holds: the graph being captured (if any), the allocator's
   * device memory, modules, pinned host memory, events, the stream and the primary context, each
   * step tried even when an earlier one failed. `earlier` lists failures of the caller's own
   * releases (cuBLASLt) to report with these.
   *
   * After a fault (an asynchronous error such as CUDA_ERROR_ILLEGAL_ADDRESS: the context is
   * poisoned and the driver answers every later call with it) the frees fail; they are not
   * reported, since releasing the context frees everything it holds. If other backends of this
   * process still hold the poisoned primary context, it is reset (cuDevicePrimaryCtxReset), so the
   * next backend on this device gets a fresh one. Throws one Error, after every step, when:
   * the context could not be released; a release failed without a fault; or the fault was first
   * seen here (no read or sync reported it before), so that it is not lost.
   */
  destroy(earlier: string[] = []): void {
    if (this.destroyed) return;
    this.destroyed = true;
    const faultBefore = this.sticky;
    const failed: string[] = [...earlier];
    const step = (what: string, fn: () => unknown): void => {
      try {
        const rc = fn();
        if (typeof rc === 'number' && rc !== CUDA_SUCCESS) failed.push(`${what}: ${errorText(this.d, rc)}`);
      } catch (err) {
        failed.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
      }
    };
    const d = this.d;
    step('cuCtxSetCurrent', () => d.cuCtxSetCurrent(this.ctx));
    currentCtx = this.ctx;
    if (this.capturingPool) this.abandonCapture(step);
    step('cuStreamSynchronize', () => {
      const rc = d.cuStreamSynchronize(this.stream);
      if (STICKY_ERRORS.has(rc))
        this.fail(new CudaError(rc, 'cuStreamSynchronize', `the GPU reported an error in earlier work: ${errorText(d, rc)}`));
      return rc;
    });
    failed.push(...this.allocator.releaseAll());
    for (const [family, mod] of this.modules) step(`cuModuleUnload(${family})`, () => d.cuModuleUnload(mod));
    this.modules.clear();
    this.fns.clear();
    for (const p of [...this.pinnedFree, ...this.pinnedBusy.map((b) => b.block)]) step('cuMemFreeHost', () => d.cuMemFreeHost(p.ptr));
    for (const e of [...this.events, ...this.pinnedBusy.map((b) => b.event)]) step('cuEventDestroy', () => d.cuEventDestroy(e));
    this.pinnedFree.length = this.pinnedBusy.length = this.events.length = 0;
    step('cuStreamDestroy', () => d.cuStreamDestroy(this.stream));
    step('the launch-argument memory', () => d.koffi.free(this.argMem));
    const contextFailed = this.releaseContext();
    currentCtx = null;
    const fault = this.sticky;
    const report = [...(fault ? [] : failed), ...contextFailed];
    if (report.length > 0 || (fault && !faultBefore)) {
      const parts = [
        ...(fault && !faultBefore ? [fault.message] : []),
        ...(report.length ? [`could not release: ${report.join('; ')}`] : []),
      ];
      const contextText = contextFailed.length ? 'the context may still be held' : 'the context was released: a new backend can be created';
      throw new Error(`destroy: ${parts.join('; ')} (${contextText})`);
    }
  }

  /** Releases the primary context; after a fault, resets it if other holders keep it alive. The failures. */
  private releaseContext(): string[] {
    const d = this.d;
    const failed: string[] = [];
    const rc = d.cuDevicePrimaryCtxRelease(this.dev);
    if (rc !== CUDA_SUCCESS) failed.push(`cuDevicePrimaryCtxRelease: ${errorText(d, rc)}`);
    if (this.sticky) {
      const flags = [0];
      const active = [0];
      const state = d.cuDevicePrimaryCtxGetState(this.dev, flags, active);
      if (state !== CUDA_SUCCESS || active[0] !== 0) {
        const reset = d.cuDevicePrimaryCtxReset(this.dev);
        if (reset !== CUDA_SUCCESS) failed.push(`cuDevicePrimaryCtxReset: ${errorText(d, reset)}`);
      }
    }
    return failed;
  }

  /** Ends a capture in progress (destroy() inside captureGraph's step), dropping its graph. */
  private abandonCapture(step: (what: string, fn: () => unknown) => void): void {
    const out: Ptr[] = [null];
    step('cuStreamEndCapture', () => this.d.cuStreamEndCapture(this.stream, out));
    if (out[0] !== null) step('cuGraphDestroy', () => this.d.cuGraphDestroy(out[0]));
    this.capturingPool = 0;
    this.allocator.activePool = 0;
    this.allocator.reuseAnyFree = false;
  }
}

/** Name, compute capability, SMs and memory of a device (CUdevice `dev`, ordinal `index`). */
export function deviceInfo(d: Driver, dev: number, index: number): DeviceInfo {
  const attr = (a: number) => {
    const v = [0];
    check(d, d.cuDeviceGetAttribute(v, a, dev), 'cuDeviceGetAttribute');
    return v[0];
  };
  const name = new Uint8Array(256);
  check(d, d.cuDeviceGetName(name, 256, dev), 'cuDeviceGetName');
  const total = [0];
  check(d, d.cuDeviceTotalMem(total, dev), 'cuDeviceTotalMem');
  const version = [0];
  check(d, d.cuDriverGetVersion(version), 'cuDriverGetVersion');
  return {
    index,
    name: new TextDecoder().decode(name.subarray(0, name.indexOf(0) < 0 ? 256 : name.indexOf(0))),
    computeCapability: [attr(ATTR.computeCapabilityMajor), attr(ATTR.computeCapabilityMinor)],
    multiprocessors: attr(ATTR.multiprocessorCount),
    totalBytes: Number(total[0]),
    driverVersion: version[0],
    maxSharedOptin: attr(ATTR.maxSharedMemoryPerBlockOptin),
  };
}
