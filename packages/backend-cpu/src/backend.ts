/**
 * The reference CPU backend: plain TypeScript kernels (src/kernels/) on host typed arrays, GEMM
 * through the sgemm engine. Every call runs to completion before it returns, so `sync` has
 * nothing to wait for. This backend defines what each kernel means for the other backends.
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
import { arg, CpuBuffer, type CpuContext, HostPool } from './buffer.js';
import { createSgemm, type GemmChoice, type GemmEngineInfo, type SgemmEngine } from './gemm/index.js';
import { envVar } from './gemm/platform.js';
import { gelu, geluBackward, siluMul, siluMulBackward } from './kernels/activations.js';
import { adamw } from './kernels/adamw.js';
import { attention, attentionBackward } from './kernels/attention.js';
import { addInto, copy, fill } from './kernels/copy.js';
import { affine, binary, unary, unaryBackward } from './kernels/elementwise.js';
import { CHUNK, CHUNK_SLOTS, elementwiseModule } from './kernels/elementwise-wasm.js';
import { embedding, embeddingBackward } from './kernels/embedding.js';
import { crossEntropy, crossEntropyBackward } from './kernels/loss.js';
import { EXP_FRAC } from './kernels/math.js';
import { matmul } from './kernels/matmul.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './kernels/norms.js';
import { dropout, dropoutBackward, random } from './kernels/random.js';
import { argmax, reduce } from './kernels/reduce.js';
import { rotary, rotaryBackward } from './kernels/rotary.js';
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

/** What a freed buffer holds: nothing. */
const NO_DATA = new Float32Array(0);

const RAW_TYPE: Record<DType, string> = {
  float32: 'Float32Array',
  float16: 'Uint16Array',
  bfloat16: 'Uint16Array',
  int32: 'Int32Array',
};

export class CpuBackend implements Backend, CpuContext {
  readonly name = 'cpu';
  readonly dtypes: readonly DType[] = DTYPES;
  readonly sgemm: SgemmEngine;
  /** Which GEMM engine runs, on how many threads, and why it was chosen. */
  readonly gemmEngine: GemmEngineInfo;
  /**
   * Worker threads that run the elementwise kernels beside the calling thread (as many threads
   * as the GEMM engine's), or null with one thread or where threads are unavailable. Buffers of
   * 256 KiB or more are then SharedArrayBuffers.
   */
  readonly pool: KernelPool | null;
  private readonly live = new Set<CpuBuffer>();
  /** Memory of freed buffers, reused by later allocations of the same byte size. */
  private readonly hostPool = new HostPool();
  private bytes = 0;
  private peakBytes = 0;
  private destroyed = false;

  constructor(opts: CpuBackendOptions = {}) {
    const sgemm = createSgemm({
      ...(opts.threads === undefined ? {} : { threads: opts.threads }),
      ...(opts.gemm === undefined ? {} : { engine: opts.gemm }),
    });
    this.sgemm = sgemm;
    this.gemmEngine = sgemm.info;
    const env = envVar('PEFT_CPU_WORKERS');
    const workers = opts.workers ?? !(env === '0' || env === 'off');
    this.pool = workers ? KernelPool.create(sgemm.info.threads, elementwiseModule(), EXP_FRAC, CHUNK_SLOTS, CHUNK) : null;
  }

  // --- memory ---------------------------------------------------------------------------------

  alloc(dtype: DType, size: number): DeviceBuffer {
    if (this.destroyed) throw new Error('alloc: this cpu backend was destroyed: create a new one');
    assertDType(dtype, 'alloc');
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`alloc: size must be a non-negative integer, got ${size}`);
    const bytes = size * bytesPerElement(dtype);
    let memory = this.hostPool.take(bytes, this.bytes, this.peakBytes);
    if (memory === undefined && this.pool !== null && bytes >= SHARED_MIN_BYTES) memory = new SharedArrayBuffer(bytes);
    const buf = new CpuBuffer(this, dtype, size, memory);
    this.live.add(buf);
    this.bytes += buf.byteLength;
    if (this.bytes > this.peakBytes) this.peakBytes = this.bytes;
    return buf;
  }

  write(buf: DeviceBuffer, data: RawArray, offset = 0): void {
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
    (b.data as Float32Array).set(data as Float32Array, offset);
  }

  read(buf: DeviceBuffer): Promise<RawArray> {
    try {
      const b = arg(this, 'read', 'buf', buf, 0, 'any');
      return Promise.resolve(b.data.slice(0, b.size));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  free(buf: DeviceBuffer): void {
    // destroy() released everything; handles that outlive the backend let go without error.
    if (this.destroyed && buf instanceof CpuBuffer && buf.owner === this) return;
    if (buf instanceof CpuBuffer && buf.owner === this && buf.freed) throw new Error('free: this buffer was already freed');
    const b = arg(this, 'free', 'buf', buf, 0, 'any');
    b.freed = true;
    this.hostPool.give(b.data);
    b.data = NO_DATA;
    this.live.delete(b);
    this.bytes -= b.byteLength;
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
    if (this.destroyed) return;
    for (const b of [...this.live]) this.free(b);
    this.hostPool.clear();
    this.pool?.destroy();
    this.sgemm.destroy();
    this.destroyed = true;
  }

  // --- data movement -------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number): void {
    fill(this, out, value);
  }
  copy(out: DeviceBuffer, x: DeviceBuffer, view: View): void {
    copy(this, out, x, view);
  }
  addInto(dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
    addInto(this, dst, src, view);
  }

  // --- elementwise ---------------------------------------------------------------------------

  unary(op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
    unary(this, op, out, x);
  }
  affine(out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
    affine(this, out, x, alpha, beta);
  }
  binary(op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
    binary(this, op, out, a, aView, b, bView);
  }
  reduce(op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, n: number, inner: number): void {
    reduce(this, op, out, x, outer, n, inner);
  }
  argmax(out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
    argmax(this, out, x, rows, cols);
  }

  // --- matmul --------------------------------------------------------------------------------

  matmul(out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
    matmul(this, out, a, b, p);
  }

  // --- embedding -----------------------------------------------------------------------------

  embedding(out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    embedding(this, out, weight, ids, n, dim);
  }
  embeddingBackward(dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    embeddingBackward(this, dWeight, dOut, ids, n, dim);
  }

  // --- norms ---------------------------------------------------------------------------------

  layerNorm(
    out: DeviceBuffer,
    mean: DeviceBuffer,
    rstd: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    bias: DeviceBuffer | null,
    p: NormParams,
  ): void {
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
    layerNormBackward(this, dx, dWeight, dBias, dy, x, weight, mean, rstd, p);
  }
  rmsNorm(out: DeviceBuffer, rstd: DeviceBuffer, x: DeviceBuffer, weight: DeviceBuffer | null, p: NormParams): void {
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
    rmsNormBackward(this, dx, dWeight, dy, x, weight, rstd, p);
  }

  // --- rotary --------------------------------------------------------------------------------

  rotary(out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    rotary(this, out, x, positions, p);
  }
  rotaryBackward(dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    rotaryBackward(this, dx, dy, positions, p);
  }

  // --- attention -----------------------------------------------------------------------------

  attention(
    out: DeviceBuffer,
    lse: DeviceBuffer,
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    mask: DeviceBuffer | null,
    p: AttentionParams,
  ): void {
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
    attentionBackward(this, dq, dk, dv, dOut, q, k, v, out, lse, mask, p);
  }

  // --- activations ---------------------------------------------------------------------------

  gelu(out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    gelu(this, out, x, approximate);
  }
  geluBackward(dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    geluBackward(this, dx, dy, x, approximate);
  }
  siluMul(out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    siluMul(this, out, gate, up);
  }
  siluMulBackward(dGate: DeviceBuffer, dUp: DeviceBuffer, dy: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    siluMulBackward(this, dGate, dUp, dy, gate, up);
  }
  unaryBackward(op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
    unaryBackward(this, op, dx, dy, x, y);
  }

  // --- loss ----------------------------------------------------------------------------------

  crossEntropy(loss: DeviceBuffer, lse: DeviceBuffer, logits: DeviceBuffer, targets: DeviceBuffer, p: CrossEntropyParams): void {
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
    crossEntropyBackward(this, dLogits, dLoss, logits, targets, lse, p);
  }

  // --- randomness ----------------------------------------------------------------------------

  random(out: DeviceBuffer, p: RandomParams): void {
    random(this, out, p);
  }
  dropout(out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
    dropout(this, out, x, p);
  }
  dropoutBackward(dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
    dropoutBackward(this, dx, dy, p);
  }

  // --- optimizer -----------------------------------------------------------------------------

  adamw(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, p: AdamWParams, scalars?: DeviceBuffer | null): void {
    adamw(this, param, grad, m, v, p, scalars);
  }
}

/** A new reference CPU backend; `threads` sizes the GEMM engine's worker pool. */
export function createCpuBackend(opts: CpuBackendOptions = {}): CpuBackend {
  return new CpuBackend(opts);
}
