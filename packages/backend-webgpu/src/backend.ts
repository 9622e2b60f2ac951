/**
 * The WebGPU backend: every kernel of `Backend` in WGSL (src/kernels/, one file per op family,
 * forward and backward side by side), float32 compute, float16/bfloat16 storage two per word.
 * Work is recorded into command batches (see runtime.ts); only `read` and `sync` wait, and they
 * wait on promises (mapAsync, onSubmittedWorkDone), never blocking the event loop.
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
import { assertDType, DTYPES } from '@peft/core';
import { arg, paddedBytes, WebGpuBuffer } from './buffer.js';
import { type DeviceRequest, requestDevice } from './device.js';
import { gelu, geluBackward, siluMul, siluMulBackward } from './kernels/activations.js';
import { adamw } from './kernels/adamw.js';
import { type AttentionKind, attention, attentionBackward } from './kernels/attention.js';
import type { Ctx } from './kernels/common.js';
import { addInto, copy, fill } from './kernels/copy.js';
import { affine, binary, unary, unaryBackward } from './kernels/elementwise.js';
import { embedding, embeddingBackward } from './kernels/embedding.js';
import { crossEntropy, crossEntropyBackward } from './kernels/loss.js';
import { type GemmKind, matmul } from './kernels/matmul.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './kernels/norms.js';
import { dropout, dropoutBackward, random } from './kernels/random.js';
import { argmax, reduce } from './kernels/reduce.js';
import { rotary, rotaryBackward } from './kernels/rotary.js';
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

/** Whether the device runs on the CPU (a fallback adapter such as SwiftShader): barriers are emulated there. */
export function isCpuAdapter(device: GPUDevice): boolean {
  const info = (device as { adapterInfo?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).adapterInfo;
  return info?.isFallbackAdapter === true || /swiftshader|llvmpipe|lavapipe|warp/i.test(`${info?.architecture} ${info?.description}`);
}

const RAW_TYPE: Record<DType, string> = {
  float32: 'Float32Array',
  float16: 'Uint16Array',
  bfloat16: 'Uint16Array',
  int32: 'Int32Array',
};

export class WebGpuBackend implements Backend, Ctx {
  readonly name = 'webgpu';
  readonly dtypes: readonly DType[] = DTYPES;
  readonly rt: GpuRuntime;
  /** Which GEMM kernel runs (see WebGpuBackendOptions.gemm). */
  readonly gemm: GemmKind;
  /** Which attention kernels run (see WebGpuBackendOptions.attention). */
  readonly attentionKind: AttentionKind;
  /** Threads per workgroup of the one-row reductions (see Ctx.rowThreads). */
  readonly rowThreads: number;
  private readonly live = new Set<WebGpuBuffer>();
  private peakBytes = 0;
  private destroyed = false;

  constructor(
    readonly device: GPUDevice,
    /** Whether destroy() also destroys the device (true when the backend requested it). */
    private readonly ownsDevice: boolean,
    opts: { maxBatch?: number; gemm?: GemmKind; attention?: AttentionKind } = {},
  ) {
    this.rt = new GpuRuntime(device, opts.maxBatch);
    if (opts.gemm !== undefined && opts.gemm !== 'tiled' && opts.gemm !== 'registers') {
      throw new Error(`createWebGpuBackend: gemm must be 'tiled' or 'registers', got ${JSON.stringify(opts.gemm)}`);
    }
    if (opts.attention !== undefined && opts.attention !== 'tiled' && opts.attention !== 'rows') {
      throw new Error(`createWebGpuBackend: attention must be 'tiled' or 'rows', got ${JSON.stringify(opts.attention)}`);
    }
    const cpu = isCpuAdapter(device);
    this.gemm = opts.gemm ?? (cpu ? 'registers' : 'tiled');
    this.attentionKind = opts.attention ?? (cpu ? 'rows' : 'tiled');
    this.rowThreads = cpu ? 4 : 256;
  }

  get owner(): object {
    return this;
  }

  private alive(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this webgpu backend was destroyed: create a new one`);
    this.rt.checkAlive(what);
  }

  // --- memory ---------------------------------------------------------------------------------

  alloc(dtype: DType, size: number): DeviceBuffer {
    this.alive('alloc');
    assertDType(dtype, 'alloc');
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`alloc: size must be a non-negative integer, got ${size}`);
    const bytes = Math.max(4, paddedBytes(dtype, size));
    const gpu = this.rt.acquire(bytes, `alloc(${dtype}, ${size})`);
    const buf = new WebGpuBuffer(this, dtype, size, gpu, gpu.size);
    this.live.add(buf);
    this.notePeak();
    return buf;
  }

  write(buf: DeviceBuffer, data: RawArray, offset = 0): void {
    this.alive('write');
    const b = arg(this, 'write', 'buf', buf, 0, 'any');
    const ok =
      b.dtype === 'float32' ? data instanceof Float32Array : b.dtype === 'int32' ? data instanceof Int32Array : data instanceof Uint16Array;
    if (!ok) {
      throw new Error(
        `write: a ${b.dtype} buffer takes a ${RAW_TYPE[b.dtype]} of raw bits (see encode), got ${data?.constructor?.name ?? data}`,
      );
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > b.size) {
      throw new Error(`write: ${data.length} elements at offset ${offset} do not fit in a buffer of ${b.size}`);
    }
    this.rt.write(b, data, offset);
  }

  async read(buf: DeviceBuffer): Promise<RawArray> {
    this.alive('read');
    const b = arg(this, 'read', 'buf', buf, 0, 'any');
    return this.rt.read(b);
  }

  free(buf: DeviceBuffer): void {
    if (buf instanceof WebGpuBuffer && buf.owner === this && buf.freed) throw new Error('free: this buffer was already freed');
    const b = arg(this, 'free', 'buf', buf, 0, 'any');
    b.freed = true;
    this.live.delete(b);
    if (!this.destroyed) this.rt.release(b.gpu);
  }

  memory(): BackendMemory {
    const m = this.rt.memory();
    return { buffers: this.live.size, bytes: m.bytes, peakBytes: Math.max(this.peakBytes, m.bytes), pooledBytes: m.pooledBytes };
  }

  resetPeak(): void {
    this.peakBytes = this.rt.memory().bytes;
  }

  /** Destroys the pooled (free) GPU buffers; `memory().pooledBytes` drops to 0. */
  trimPool(): void {
    this.rt.storage.trim();
  }

  async sync(): Promise<void> {
    this.alive('sync');
    await this.rt.sync();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.rt.flush();
    for (const b of this.live) {
      b.freed = true;
      b.gpu.destroy();
    }
    this.live.clear();
    this.rt.destroy();
    this.destroyed = true;
    if (this.ownsDevice) this.device.destroy();
  }

  private notePeak(): void {
    const bytes = this.rt.memory().bytes;
    if (bytes > this.peakBytes) this.peakBytes = bytes;
  }

  // --- kernels --------------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number): void {
    this.alive('fill');
    fill(this, out, value);
  }
  copy(out: DeviceBuffer, x: DeviceBuffer, view: View): void {
    this.alive('copy');
    copy(this, out, x, view);
  }
  addInto(dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
    this.alive('addInto');
    addInto(this, dst, src, view);
  }
  unary(op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
    this.alive('unary');
    unary(this, op, out, x);
  }
  affine(out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
    this.alive('affine');
    affine(this, out, x, alpha, beta);
  }
  binary(op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
    this.alive('binary');
    binary(this, op, out, a, aView, b, bView);
  }
  reduce(op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, n: number, inner: number): void {
    this.alive('reduce');
    reduce(this, op, out, x, outer, n, inner);
  }
  argmax(out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
    this.alive('argmax');
    argmax(this, out, x, rows, cols);
  }
  matmul(out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
    this.alive('matmul');
    matmul(this, out, a, b, p);
  }
  embedding(out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    this.alive('embedding');
    embedding(this, out, weight, ids, n, dim);
  }
  embeddingBackward(dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    this.alive('embeddingBackward');
    embeddingBackward(this, dWeight, dOut, ids, n, dim);
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
    layerNorm(this, out, mean, rstd, x, weight, bias, p);
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
    layerNormBackward(this, dx, dWeight, dBias, dy, x, weight, mean, rstd, p);
  }
  rmsNorm(out: DeviceBuffer, rstd: DeviceBuffer, x: DeviceBuffer, weight: DeviceBuffer | null, p: NormParams): void {
    this.alive('rmsNorm');
    rmsNorm(this, out, rstd, x, weight, p);
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
    rmsNormBackward(this, dx, dWeight, dy, x, weight, rstd, p);
  }
  rotary(out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    this.alive('rotary');
    rotary(this, out, x, positions, p);
  }
  rotaryBackward(dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    this.alive('rotaryBackward');
    rotaryBackward(this, dx, dy, positions, p);
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
    attention(this, out, lse, q, k, v, mask, p);
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
    attentionBackward(this, dq, dk, dv, dOut, q, k, v, out, lse, mask, p);
  }
  gelu(out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    this.alive('gelu');
    gelu(this, out, x, approximate);
  }
  geluBackward(dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    this.alive('geluBackward');
    geluBackward(this, dx, dy, x, approximate);
  }
  siluMul(out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    this.alive('siluMul');
    siluMul(this, out, gate, up);
  }
  siluMulBackward(dGate: DeviceBuffer, dUp: DeviceBuffer, dy: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    this.alive('siluMulBackward');
    siluMulBackward(this, dGate, dUp, dy, gate, up);
  }
  unaryBackward(op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
    this.alive('unaryBackward');
    unaryBackward(this, op, dx, dy, x, y);
  }
  crossEntropy(loss: DeviceBuffer, lse: DeviceBuffer, logits: DeviceBuffer, targets: DeviceBuffer, p: CrossEntropyParams): void {
    this.alive('crossEntropy');
    crossEntropy(this, loss, lse, logits, targets, p);
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
    crossEntropyBackward(this, dLogits, dLoss, logits, targets, lse, p);
  }
  random(out: DeviceBuffer, p: RandomParams): void {
    this.alive('random');
    random(this, out, p);
  }
  dropout(out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
    this.alive('dropout');
    dropout(this, out, x, p);
  }
  dropoutBackward(dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
    this.alive('dropoutBackward');
    dropoutBackward(this, dx, dy, p);
  }
  adamw(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, p: AdamWParams, scalars?: DeviceBuffer | null): void {
    this.alive('adamw');
    adamw(this, param, grad, m, v, p, scalars);
  }
}

/**
 * A WebGPU backend on `opts.device`, or on a device it requests: navigator.gpu in a browser, the
 * `webgpu` package (Dawn) in Node. Rejects with an explanation when no adapter is available.
 */
export async function createWebGpuBackend(opts: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const device = opts.device ?? (await requestDevice(opts));
  return new WebGpuBackend(device, opts.device === undefined, { maxBatch: opts.maxBatch, gemm: opts.gemm, attention: opts.attention });
}
