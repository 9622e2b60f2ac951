/**
 * The CUDA backend: every kernel of `Backend` in CUDA C++ (kernels/*.cu, one file per op family,
 * forward and backward side by side), compiled ahead of time into fatbins and launched through
 * the driver API; GEMMs through cuBLASLt when it can be found (the tiled kernel otherwise).
 * float32 compute; float32, float16, bfloat16 and int32 storage. All work runs on one stream in
 * order; only `read` and `sync` wait, by polling an event from the event loop.
 *
 * This file holds allocation, the stream, graph capture and cuBLASLt's setup; each op forwards to
 * its family's host side in src/kernels/<family>.ts (argument checks, which kernel variant runs,
 * grid and launch arguments), the twin of kernels/<family>.cu.
 *
 * Where the GPU cannot throw: an embedding id outside the table reads zeros (and its gradient is
 * dropped), a cross-entropy target that is neither a class nor ignoreIndex gives NaN, float →
 * int32 copies truncate and saturate (NaN → 0).
 */
import type {
  AdamWParams,
  AttentionParams,
  Backend,
  BackendMemory,
  BinaryOp,
  CrossEntropyParams,
  DeviceBuffer,
  DropoutParams,
  DType,
  MatmulParams,
  NormParams,
  RandomParams,
  RawArray,
  ReduceOp,
  RotaryParams,
  UnaryOp,
  View,
} from '@peft/core';
import { assertDType, bytesPerElement, DTYPES } from '@peft/core';
import type { AllocatorStats, Block } from './allocator.js';
import { arg, CudaBuffer } from './buffer.js';
import { CublasLt } from './cublaslt.js';
import { gelu, geluBackward, siluMul, siluMulBackward } from './kernels/activations.js';
import { adamw } from './kernels/adamw.js';
import { attention, attentionBackward } from './kernels/attention.js';
import type { Ctx } from './kernels/common.js';
import { addInto, copy, fill } from './kernels/copy.js';
import { affine, binary, unary, unaryBackward } from './kernels/elementwise.js';
import { embedding, embeddingBackward } from './kernels/embedding.js';
import { crossEntropy, crossEntropyBackward } from './kernels/loss.js';
import { matmul } from './kernels/matmul.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './kernels/norms.js';
import { dropout, dropoutBackward, random } from './kernels/random.js';
import { argmax, reduce } from './kernels/reduce.js';
import { rotary, rotaryBackward } from './kernels/rotary.js';
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

const RAW: Record<DType, (b: ArrayBuffer) => RawArray> = {
  float32: (b) => new Float32Array(b),
  float16: (b) => new Uint16Array(b),
  bfloat16: (b) => new Uint16Array(b),
  int32: (b) => new Int32Array(b),
};

const RAW_NAME: Record<DType, string> = { float32: 'Float32Array', float16: 'Uint16Array', bfloat16: 'Uint16Array', int32: 'Int32Array' };

export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly dtypes: readonly DType[] = DTYPES;
  readonly rt: CudaRuntime;
  /** cuBLASLt, or null when not found (then `gemmLibrary` says why). */
  readonly lt: CublasLt | null = null;
  /** Which GEMM runs: the cuBLASLt path, or why the tiled kernel is used. */
  readonly gemmLibrary: string;
  private readonly live = new Set<CudaBuffer>();
  private readonly workspace: Block | null = null;
  private destroyed = false;
  /** What the op families (src/kernels/) launch with. */
  private readonly ctx: Ctx;
  /** Matmul calls per path since creation (tests and benchmarks read them). */
  readonly gemmCounts = { cublasLt: 0, tiled: 0, skinny: 0 };
  /** Kernel launches by kernel name since creation (graph replays not counted): which paths a workload took. */
  kernelLaunches(): Record<string, number> {
    return Object.fromEntries(this.rt.launchCounts);
  }

  /** Whether attention uses the tensor-core kernels where they apply (see CudaBackendOptions.tensorCores). */
  readonly tensorCores: boolean;
  /** Whether LoRA's mixed-dtype GEMMs run on the skinny kernels (see CudaBackendOptions.mixedKernels). */
  readonly mixedKernels: boolean;

  constructor(opts: CudaBackendOptions = {}) {
    this.rt = new CudaRuntime(opts.deviceIndex ?? 0);
    this.mixedKernels = opts.mixedKernels ?? true;
    this.tensorCores = (opts.tensorCores ?? true) && this.rt.info.computeCapability[0] >= 8;
    if (opts.cublas === false) {
      this.gemmLibrary = 'tiled kernel (cublas: false)';
    } else {
      const bytes = opts.workspaceBytes ?? 32 * 2 ** 20;
      this.workspace = this.rt.alloc(bytes);
      const found = CublasLt.load(
        this.rt.d.koffi,
        this.rt.info.driverVersion,
        this.rt.stream,
        { ptr: this.workspace.ptr, bytes },
        opts.allowTf32 ?? false,
      );
      this.lt = found.lt;
      if (found.lt) {
        this.gemmLibrary = `cuBLASLt ${found.lt.version} (${found.lt.path})`;
      } else {
        this.rt.release(this.workspace);
        this.workspace = null;
        this.gemmLibrary = `tiled kernel: no cuBLASLt found (tried ${found.tried.join(', ')}; set LD_LIBRARY_PATH or CUDA_HOME, or pip install nvidia-cublas-cu12)`;
      }
    }
    this.ctx = {
      owner: this,
      rt: this.rt,
      lt: this.lt,
      gemmCounts: this.gemmCounts,
      tensorCores: this.tensorCores,
      mixedKernels: this.mixedKernels,
    };
  }

  /** The GPU this backend runs on. */
  get device(): DeviceInfo {
    return this.rt.info;
  }

  private alive(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this cuda backend was destroyed: create a new one`);
    this.rt.alive(what);
  }

  // --- memory ---------------------------------------------------------------------------------

  alloc(dtype: DType, size: number): DeviceBuffer {
    this.alive('alloc');
    assertDType(dtype, 'alloc');
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`alloc: size must be a non-negative integer, got ${size}`);
    const buf = new CudaBuffer(this, dtype, size, this.rt.alloc(size * bytesPerElement(dtype)));
    this.live.add(buf);
    return buf;
  }

  write(buf: DeviceBuffer, data: RawArray, offset = 0): void {
    this.alive('write');
    const b = arg(this, 'write', 'buf', buf, 0, 'any');
    const ok =
      b.dtype === 'float32' ? data instanceof Float32Array : b.dtype === 'int32' ? data instanceof Int32Array : data instanceof Uint16Array;
    if (!ok)
      throw new Error(
        `write: a ${b.dtype} buffer takes a ${RAW_NAME[b.dtype]} of raw bits (see encode), got ${data?.constructor?.name ?? data}`,
      );
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > b.size) {
      throw new Error(`write: ${data.length} elements at offset ${offset} do not fit in a buffer of ${b.size}`);
    }
    this.rt.upload(b.ptr + offset * bytesPerElement(b.dtype), data);
  }

  async read(buf: DeviceBuffer): Promise<RawArray> {
    this.alive('read');
    const b = arg(this, 'read', 'buf', buf, 0, 'any');
    const bytes = await this.rt.download(b.ptr, b.byteLength);
    return RAW[b.dtype](bytes.buffer as ArrayBuffer);
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof CudaBuffer && buf.owner === this && buf.freed) {
      if (this.destroyed) return;
      throw new Error('free: this buffer was already freed');
    }
    const b = arg(this, 'free', 'buf', buf, 0, 'any');
    b.freed = true;
    this.live.delete(b);
    this.rt.release(b.block);
  }

  memory(): BackendMemory {
    const s = this.rt.stats();
    return { buffers: this.live.size, bytes: s.reserved, peakBytes: s.peakReserved, pooledBytes: s.pooled };
  }

  /** The caching allocator's numbers (current, peak, reserved, pooled, …) and the device's free/total bytes. */
  memoryStats(): CudaMemoryStats {
    this.alive('memoryStats');
    const free = [0];
    const total = [0];
    this.rt.d.cuMemGetInfo(free, total);
    return { ...this.rt.stats(), deviceFree: Number(free[0]), deviceTotal: Number(total[0]) };
  }

  resetPeak(): void {
    this.rt.allocator.resetPeak();
  }

  /** Gives the pooled (free) device blocks back to the driver; waits for the stream. */
  trimPool(): void {
    this.alive('trimPool');
    this.rt.trim();
  }

  async sync(): Promise<void> {
    this.alive('sync');
    await this.rt.sync();
  }

  /**
   * Captures the kernels `step` enqueues into a CUDA graph that `launch()` replays with one
   * driver call. The step must be deterministic in its launches: the same kernels on the same
   * buffers every time (write new inputs into the captured input buffers before each launch);
   * no read, write or sync inside. Buffers it allocates belong to the graph until `destroy()`.
   * The shared pool's free blocks are given back to the driver first (waiting for the stream), so
   * that the graph's own pool takes their place instead of adding to them: an eager warm-up step
   * followed by a capture then reserves about what one step needs, not twice that.
   */
  captureGraph(step: () => void): CudaGraph {
    this.alive('captureGraph');
    this.rt.trim();
    return this.rt.capture(step);
  }

  destroy(): void {
    if (this.destroyed) return;
    for (const b of this.live) b.freed = true;
    this.live.clear();
    this.lt?.destroy();
    this.rt.destroy();
    this.destroyed = true;
  }

  // --- op families: checks, variant choice and launches live in src/kernels/<family>.ts -------

  fill(out: DeviceBuffer, value: number): void {
    this.alive('fill');
    fill(this.ctx, out, value);
  }

  copy(out: DeviceBuffer, x: DeviceBuffer, view: View): void {
    this.alive('copy');
    copy(this.ctx, out, x, view);
  }

  addInto(dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
    this.alive('addInto');
    addInto(this.ctx, dst, src, view);
  }

  unary(op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
    this.alive('unary');
    unary(this.ctx, op, out, x);
  }

  unaryBackward(op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
    this.alive('unaryBackward');
    unaryBackward(this.ctx, op, dx, dy, x, y);
  }

  affine(out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
    this.alive('affine');
    affine(this.ctx, out, x, alpha, beta);
  }

  binary(op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
    this.alive('binary');
    binary(this.ctx, op, out, a, aView, b, bView);
  }

  reduce(op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, n: number, inner: number): void {
    this.alive('reduce');
    reduce(this.ctx, op, out, x, outer, n, inner);
  }

  argmax(out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
    this.alive('argmax');
    argmax(this.ctx, out, x, rows, cols);
  }

  matmul(out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
    this.alive('matmul');
    matmul(this.ctx, out, a, b, p);
  }

  embedding(out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    this.alive('embedding');
    embedding(this.ctx, out, weight, ids, n, dim);
  }

  embeddingBackward(dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    this.alive('embeddingBackward');
    embeddingBackward(this.ctx, dWeight, dOut, ids, n, dim);
  }

  layerNorm(
    out: DeviceBuffer,
    mean: DeviceBuffer,
    rstd: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    bias: DeviceBuffer | null,
    p: NormParams,
  ): void {
    this.alive('layerNorm');
    layerNorm(this.ctx, out, mean, rstd, x, weight, bias, p);
  }

  rmsNorm(out: DeviceBuffer, rstd: DeviceBuffer, x: DeviceBuffer, weight: DeviceBuffer | null, p: NormParams): void {
    this.alive('rmsNorm');
    rmsNorm(this.ctx, out, rstd, x, weight, p);
  }

  layerNormBackward(
    dx: DeviceBuffer,
    dWeight: DeviceBuffer | null,
    dBias: DeviceBuffer | null,
    dy: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    mean: DeviceBuffer,
    rstd: DeviceBuffer,
    p: NormParams,
  ): void {
    this.alive('layerNormBackward');
    layerNormBackward(this.ctx, dx, dWeight, dBias, dy, x, weight, mean, rstd, p);
  }

  rmsNormBackward(
    dx: DeviceBuffer,
    dWeight: DeviceBuffer | null,
    dy: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    rstd: DeviceBuffer,
    p: NormParams,
  ): void {
    this.alive('rmsNormBackward');
    rmsNormBackward(this.ctx, dx, dWeight, dy, x, weight, rstd, p);
  }

  rotary(out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    this.alive('rotary');
    rotary(this.ctx, out, x, positions, p);
  }

  rotaryBackward(dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    this.alive('rotaryBackward');
    rotaryBackward(this.ctx, dx, dy, positions, p);
  }

  attention(
    out: DeviceBuffer,
    lse: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void {
    this.alive('attention');
    attention(this.ctx, out, lse, q, k, v, mask, p);
  }

  attentionBackward(
    dq: DeviceBuffer,
    dk: DeviceBuffer,
    dv: DeviceBuffer,
    dOut: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    out: DeviceBuffer,
    lse: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void {
    this.alive('attentionBackward');
    attentionBackward(this.ctx, dq, dk, dv, dOut, q, k, v, out, lse, mask, p);
  }

  gelu(out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    this.alive('gelu');
    gelu(this.ctx, out, x, approximate);
  }

  geluBackward(dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    this.alive('geluBackward');
    geluBackward(this.ctx, dx, dy, x, approximate);
  }

  siluMul(out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    this.alive('siluMul');
    siluMul(this.ctx, out, gate, up);
  }

  siluMulBackward(dGate: DeviceBuffer, dUp: DeviceBuffer, dy: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    this.alive('siluMulBackward');
    siluMulBackward(this.ctx, dGate, dUp, dy, gate, up);
  }

  crossEntropy(loss: DeviceBuffer, lse: DeviceBuffer, logits: DeviceBuffer, targets: DeviceBuffer, p: CrossEntropyParams): void {
    this.alive('crossEntropy');
    crossEntropy(this.ctx, loss, lse, logits, targets, p);
  }

  crossEntropyBackward(
    dLogits: DeviceBuffer,
    dLoss: DeviceBuffer,
    logits: DeviceBuffer,
    targets: DeviceBuffer,
    lse: DeviceBuffer,
    p: CrossEntropyParams,
  ): void {
    this.alive('crossEntropyBackward');
    crossEntropyBackward(this.ctx, dLogits, dLoss, logits, targets, lse, p);
  }

  random(out: DeviceBuffer, p: RandomParams): void {
    this.alive('random');
    random(this.ctx, out, p);
  }

  dropout(out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
    this.alive('dropout');
    dropout(this.ctx, out, x, p);
  }

  dropoutBackward(dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
    this.alive('dropoutBackward');
    dropoutBackward(this.ctx, dx, dy, p);
  }

  adamw(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, p: AdamWParams, scalars?: DeviceBuffer | null): void {
    this.alive('adamw');
    adamw(this.ctx, param, grad, m, v, p, scalars);
  }
}

/**
 * A CUDA backend on GPU `deviceIndex` (default 0). Throws when there is no usable driver or GPU:
 * call `isAvailable()` first to learn why without an exception.
 */
export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend(opts);
}
