/**
 * The GPU side of the backend: the device, the buffer pools, pipeline and layout caches, and the
 * command batch. Kernels call `launch`, which records a dispatch into the open compute pass of one
 * command encoder; the batch is submitted when something waits on it (`read`, `sync`), before a
 * `write` into a buffer it uses, or after `maxBatch` dispatches. Uniforms of a batch live in one
 * arena written with a single `writeBuffer` just before the submit; queue order makes the arena
 * reusable at once by the next batch.
 */
import { type DType, RAW_ARRAY, type RawArray } from '@peft/core';
import { paddedBytes, WebGpuBuffer } from './buffer.js';
import { BufferPool } from './pool.js';
import { type Access, assemble, type BindingDecl, type ParamDecl, type ScalarType, uniformBytes } from './program.js';

export interface LaunchBinding {
  name: string;
  /** null binds a small dummy buffer (an optional input the kernel does not read). */
  buf: WebGpuBuffer | null;
  access: Access;
  /** Declare the binding with another dtype (e.g. float32 to see a 16-bit buffer as raw words). */
  as?: DType;
}

export interface Launch {
  /** Kernel name for error messages, e.g. `matmul`. */
  kernel: string;
  params?: readonly (readonly [string, ScalarType, number])[];
  /** A scalar array appended to the uniform block (read as `P.<name>[i / 4][i % 4]`). */
  array?: { name: string; type: ScalarType; values: ArrayLike<number> };
  bindings: readonly LaunchBinding[];
  /** WGSL that defines `fn kernel(group: u32, lid: u32, wid: vec3<u32>)`. */
  code: string;
  workgroupSize?: number;
  /** A count of workgroups (split over x and y when above the per-dimension limit; the kernel sees the linear index as `group`), or an explicit 3-D grid. */
  groups: number | readonly [number, number, number];
}

const UNIFORM_ALIGN = 256;
const ARENA_BYTES = 64 * 1024;

export class GpuRuntime {
  readonly storage: BufferPool;
  private readonly staging: BufferPool;
  private readonly pipelines = new Map<string, { pipeline: GPUComputePipeline; layout: GPUBindGroupLayout }>();
  private readonly arena: GPUBuffer;
  private readonly arenaData = new ArrayBuffer(ARENA_BYTES);
  private arenaUsed = 0;
  private readonly dummy: GPUBuffer;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private dispatches = 0;
  /** GPUBuffers the open batch touches: a write into one of them submits the batch first. */
  private readonly used = new Set<GPUBuffer>();
  /** Set when the device is lost: every later call fails with it. */
  lost: Error | null = null;
  private readonly lostPromise: Promise<never>;
  /** The first validation or out-of-memory error the device reported; the next read or sync rejects with it. */
  private pendingError: Error | null = null;

  constructor(
    readonly device: GPUDevice,
    readonly maxBatch = 64,
  ) {
    const U = GPUBufferUsage;
    this.storage = new BufferPool(device, U.STORAGE | U.COPY_SRC | U.COPY_DST, 'peft storage');
    this.staging = new BufferPool(device, U.MAP_READ | U.COPY_DST, 'peft read-back');
    this.arena = device.createBuffer({ size: ARENA_BYTES, usage: U.UNIFORM | U.COPY_DST, label: 'peft uniforms' });
    this.dummy = device.createBuffer({ size: 16, usage: U.STORAGE, label: 'peft unused binding' });
    this.lostPromise = device.lost.then((info) => {
      this.lost = new Error(
        `webgpu backend: the GPU device was lost (${info.reason}${info.message ? `: ${info.message}` : ''}): create a new backend`,
      );
      throw this.lost;
    });
    this.lostPromise.catch(() => {});
    device.addEventListener?.('uncapturederror', (event) => {
      const error = (event as GPUUncapturedErrorEvent).error;
      this.pendingError ??= new Error(`webgpu backend: the device reported an error: ${error?.message ?? String(error)}`);
    });
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  checkAlive(what: string): void {
    if (this.lost) throw new Error(`${what}: ${this.lost.message}`);
  }

  // --- buffers --------------------------------------------------------------------------------

  /** A pooled storage buffer of at least `bytes` (for tensors and kernel temporaries). */
  acquire(bytes: number, what: string): GPUBuffer {
    const max = this.limits.maxBufferSize;
    const size = BufferPool.sizeClass(bytes);
    if (size > max) {
      throw new Error(
        `${what}: ${bytes} bytes (pool class ${size}) is more than this GPU's maxBufferSize of ${max} bytes: use smaller tensors (shorter sequences, smaller batches) or a device with larger limits`,
      );
    }
    return this.storage.acquire(bytes);
  }

  release(buffer: GPUBuffer): void {
    this.storage.release(buffer);
  }

  /** A temporary buffer for one launch: released into the pool by `done` (queue order keeps reuse safe). */
  temp(owner: object, dtype: DType, size: number, what: string): WebGpuBuffer {
    const bytes = Math.max(4, paddedBytes(dtype, size));
    return new WebGpuBuffer(owner, dtype, size, this.acquire(bytes, what), bytes);
  }

  done(tmp: WebGpuBuffer): void {
    tmp.freed = true;
    this.release(tmp.gpu);
  }

  write(buf: WebGpuBuffer, data: RawArray, offset: number): void {
    if (this.used.has(buf.gpu)) this.flush();
    const bytes = data.byteLength;
    if (bytes === 0) return;
    const wide = buf.dtype === 'float32' || buf.dtype === 'int32';
    if (wide || (offset % 2 === 0 && data.length % 2 === 0)) {
      this.device.queue.writeBuffer(buf.gpu, offset * (wide ? 4 : 2), data.buffer, data.byteOffset, bytes);
      return;
    }
    // 16-bit data at an odd offset or of odd length: upload whole words to a temporary, then let a
    // kernel move the halves so that the neighbouring elements keep their bits.
    const padded = new Uint16Array(data.length + (data.length % 2));
    padded.set(data as Uint16Array);
    const tmp = this.temp(buf.owner, buf.dtype, padded.length, 'write');
    this.device.queue.writeBuffer(tmp.gpu, 0, padded.buffer, 0, padded.byteLength);
    this.launch({
      kernel: 'write',
      params: [
        ['n', 'u32', data.length],
        ['offset', 'u32', offset],
      ],
      bindings: [
        { name: 'dst', buf, access: 'readwrite' },
        { name: 'src', buf: tmp, access: 'read' },
      ],
      code: `fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * 256u + lid;
  if (i >= P.n) { return; }
  stw_dst(P.offset + i, raw_src(i));
}`,
      groups: Math.ceil(data.length / 256),
    });
    this.done(tmp);
  }

  async read(buf: WebGpuBuffer): Promise<RawArray> {
    const bytes = buf.byteLength;
    const n = buf.size;
    const make = (ab: ArrayBuffer): RawArray => new RAW_ARRAY[buf.dtype](ab, 0, n);
    if (bytes === 0) return make(new ArrayBuffer(0));
    const staging = this.staging.acquire(bytes);
    this.endPass();
    this.ensureEncoder().copyBufferToBuffer(buf.gpu, 0, staging, 0, bytes);
    this.flush();
    try {
      await Promise.race([staging.mapAsync(GPUMapMode.READ, 0, bytes), this.lostPromise]);
    } catch (err) {
      this.takeError();
      throw this.lost ? new Error(`read: ${this.lost.message}`) : err;
    }
    const copy = staging.getMappedRange(0, bytes).slice(0);
    staging.unmap();
    this.staging.release(staging);
    this.takeError();
    return make(copy);
  }

  async sync(): Promise<void> {
    this.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.lostPromise]);
    this.takeError();
  }

  private takeError(): void {
    const e = this.pendingError;
    if (e) {
      this.pendingError = null;
      throw e;
    }
  }

  // --- launches -------------------------------------------------------------------------------

  launch(l: Launch): void {
    const limit = this.limits.maxStorageBufferBindingSize;
    const decls: BindingDecl[] = [];
    const written = new Set<GPUBuffer>();
    for (const b of l.bindings) {
      if (b.buf && b.access !== 'read') {
        if (written.has(b.buf.gpu)) throw new Error(`${l.kernel}: two outputs are the same buffer: pass distinct buffers`);
        written.add(b.buf.gpu);
      }
    }
    const gpuBuffers: GPUBuffer[] = [];
    const temps: WebGpuBuffer[] = [];
    for (const b of l.bindings) {
      if (b.buf === null) {
        decls.push({ name: b.name, dtype: 'float32', access: 'read' });
        gpuBuffers.push(this.dummy);
        continue;
      }
      if (b.buf.capacity > limit && b.buf.byteLength > limit) {
        throw new Error(
          `${l.kernel}: ${b.name} holds ${b.buf.byteLength} bytes, more than this GPU's maxStorageBufferBindingSize of ${limit} bytes: use smaller tensors or a device with larger limits`,
        );
      }
      let gpu = b.buf.gpu;
      if (b.access === 'read' && written.has(gpu)) {
        // An input that is also an output: read a copy (WebGPU forbids binding one buffer both ways).
        const tmp = this.temp(b.buf.owner, b.buf.dtype, b.buf.size, l.kernel);
        this.endPass();
        this.ensureEncoder().copyBufferToBuffer(gpu, 0, tmp.gpu, 0, b.buf.byteLength);
        temps.push(tmp);
        gpu = tmp.gpu;
      }
      decls.push({ name: b.name, dtype: b.as ?? b.buf.dtype, access: b.access });
      gpuBuffers.push(gpu);
    }
    const params: ParamDecl[] = (l.params ?? []).map(([name, type]) => ({ name, type }));
    const arrayDecl = l.array ? { name: l.array.name, type: l.array.type, length: Math.max(4, l.array.values.length) } : null;
    const wg = l.workgroupSize ?? 256;
    const source = assemble(params, arrayDecl, decls, l.code, wg);
    const { pipeline, layout } = this.pipeline(source, decls, l.kernel);

    // Uniforms into the arena.
    const ubytes = uniformBytes(params, arrayDecl?.length ?? 0);
    if (this.arenaUsed + ubytes > ARENA_BYTES) this.flush();
    const offset = this.arenaUsed;
    this.arenaUsed += Math.ceil(ubytes / UNIFORM_ALIGN) * UNIFORM_ALIGN;
    const view = new DataView(this.arenaData, offset, ubytes);
    const put = (at: number, type: ScalarType, v: number) => {
      if (type === 'f32') view.setFloat32(at, v, true);
      else if (type === 'i32') view.setInt32(at, v, true);
      else view.setUint32(at, v >>> 0, true);
    };
    (l.params ?? []).forEach(([, type, v], i) => {
      put(i * 4, type, v);
    });
    if (l.array) {
      const base = Math.ceil(params.length / 4) * 16;
      for (let i = 0; i < l.array.values.length; i++) put(base + i * 4, l.array.type, l.array.values[i]!);
    }

    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.arena, offset, size: ubytes } }];
    gpuBuffers.forEach((buffer, i) => {
      entries.push({ binding: i + 1, resource: { buffer } });
      this.used.add(buffer);
    });
    const bindGroup = this.device.createBindGroup({ layout, entries, label: l.kernel });

    let grid: [number, number, number];
    const maxDim = this.limits.maxComputeWorkgroupsPerDimension;
    if (typeof l.groups === 'number') {
      const g = l.groups;
      if (g === 0) {
        for (const t of temps) this.done(t);
        return;
      }
      const y = Math.ceil(g / maxDim);
      if (y > maxDim)
        throw new Error(
          `${l.kernel}: ${g} workgroups are more than ${maxDim}² (maxComputeWorkgroupsPerDimension²): the tensor is too large`,
        );
      grid = [Math.ceil(g / y), y, 1];
    } else {
      grid = [l.groups[0], l.groups[1], l.groups[2]];
      if (grid.some((d) => d === 0)) {
        for (const t of temps) this.done(t);
        return;
      }
      const over = grid.findIndex((d) => d > maxDim);
      if (over >= 0) {
        throw new Error(
          `${l.kernel}: ${grid[over]} workgroups in dimension ${'xyz'[over]} exceed this GPU's maxComputeWorkgroupsPerDimension of ${maxDim}: use smaller tensors`,
        );
      }
    }
    const pass = this.ensurePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(grid[0], grid[1], grid[2]);
    for (const t of temps) this.done(t);
    if (++this.dispatches >= this.maxBatch) this.flush();
  }

  private pipeline(source: string, decls: readonly BindingDecl[], kernel: string) {
    let entry = this.pipelines.get(source);
    if (!entry) {
      const layout = this.device.createBindGroupLayout({
        label: kernel,
        entries: [
          { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } },
          ...decls.map(
            (d, i): GPUBindGroupLayoutEntry => ({
              binding: i + 1,
              visibility: GPUShaderStage.COMPUTE,
              buffer: { type: d.access === 'read' ? 'read-only-storage' : 'storage' },
            }),
          ),
        ],
      });
      const module = this.device.createShaderModule({ code: source, label: kernel });
      const pipeline = this.device.createComputePipeline({
        label: kernel,
        layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
        compute: { module, entryPoint: 'main' },
      });
      entry = { pipeline, layout };
      this.pipelines.set(source, entry);
    }
    return entry;
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.encoder ??= this.device.createCommandEncoder({ label: 'peft batch' });
    return this.encoder;
  }

  private ensurePass(): GPUComputePassEncoder {
    this.pass ??= this.ensureEncoder().beginComputePass({ label: 'peft kernels' });
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits the open batch (uniform arena first). */
  flush(): void {
    this.endPass();
    if (!this.encoder) return;
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaData, 0, this.arenaUsed);
    this.device.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.arenaUsed = 0;
    this.dispatches = 0;
    this.used.clear();
  }

  memory(): { bytes: number; pooledBytes: number } {
    return {
      bytes: this.storage.totalBytes + this.staging.totalBytes,
      pooledBytes: this.storage.pooledBytes + this.staging.pooledBytes,
    };
  }

  destroy(): void {
    this.encoder = null;
    this.pass = null;
    this.storage.trim();
    this.staging.trim();
    this.arena.destroy();
    this.dummy.destroy();
  }
}
