/**
 * The CUDA backend: every kernel of `Backend` in CUDA C++ (kernels/*.cu, one file per op family,
 * forward and backward side by side), compiled ahead of time into fatbins and launched through
 * the driver API; GEMMs through cuBLASLt when it can be found (the tiled kernel otherwise).
 * float32 compute; float32, float16, bfloat16 and int32 storage. All work runs on one stream in
 * order; only `read` and `sync` wait, by polling an event from the event loop.
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
import { assertDType, bytesPerElement, DTYPES, encode, splitKey } from '@peft/core';
import type { AllocatorStats, Block } from './allocator.js';
import { arg, CudaBuffer, counts, finite, same } from './buffer.js';
import { CublasLt, type GemmCall } from './cublaslt.js';
import {
  BINARY_CODE,
  DTYPE_CODE,
  isContiguous,
  type KernelName,
  type KernelView,
  simplifyView,
  simplifyViews,
  UNARY_CODE,
} from './kernels.js';
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

const THREADS = 256;

export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly dtypes: readonly DType[] = DTYPES;
  readonly rt: CudaRuntime;
  /** cuBLASLt, or null when not found (then `gemmLibrary` says why). */
  readonly lt: CublasLt | null;
  /** Which GEMM runs: the cuBLASLt path, or why the tiled kernel is used. */
  readonly gemmLibrary: string;
  private readonly live = new Set<CudaBuffer>();
  private readonly workspace: Block | null = null;
  private destroyed = false;
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
      this.lt = null;
      this.gemmLibrary = 'tiled kernel (cublas: false)';
      return;
    }
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

  /** The GPU this backend runs on. */
  get device(): DeviceInfo {
    return this.rt.info;
  }

  private alive(what: string): void {
    if (this.destroyed) throw new Error(`${what}: this cuda backend was destroyed: create a new one`);
    this.rt.alive(what);
  }

  private grid(n: number): number {
    return Math.max(1, Math.min(Math.ceil(n / THREADS), this.rt.info.multiprocessors * 16));
  }

  /** A temporary device block, released right after the kernels that use it are enqueued (stream order keeps that safe). */
  private temp(bytes: number): Block {
    return this.rt.alloc(bytes);
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

  // --- data movement --------------------------------------------------------------------------

  fill(out: DeviceBuffer, value: number): void {
    this.alive('fill');
    const o = arg(this, 'fill', 'out', out, 0, 'any');
    if (o.dtype === 'int32') {
      if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) {
        throw new Error(`fill: value ${value} cannot be stored in an int32 buffer: use an integer in [-2^31, 2^31)`);
      }
      this.rt.memsetD32(o.ptr, value, o.size);
    } else if (o.dtype === 'float32') {
      this.rt.memsetD32(o.ptr, new Uint32Array(new Float32Array([value]).buffer)[0], o.size);
    } else {
      this.rt.memsetD16(o.ptr, (encode([value], o.dtype) as Uint16Array)[0], o.size);
    }
  }

  copy(out: DeviceBuffer, x: DeviceBuffer, view: View): void {
    this.alive('copy');
    const src = arg(this, 'copy', 'x', x, 0, 'any');
    const n = checkView('copy', view, 'x', src.size);
    const dst = arg(this, 'copy', 'out', out, n, 'any');
    if (dst === src) throw new Error('copy: out and x are the same buffer: copy into a separate buffer');
    if (n === 0) return;
    const v = simplifyView(view);
    if (dst.dtype === src.dtype) {
      const bpe = bytesPerElement(src.dtype);
      if (isContiguous(v)) this.rt.copyDtoD(dst.ptr, src.ptr + v.offset * bpe, n * bpe);
      else this.rt.launch(bpe === 4 ? 'copy_bits32' : 'copy_bits16', [this.grid(n)], [THREADS], 0, [dst.ptr, src.ptr, v, n]);
      return;
    }
    this.rt.launch('copy_convert', [this.grid(n)], [THREADS], 0, [dst.ptr, DTYPE_CODE[dst.dtype], src.ptr, DTYPE_CODE[src.dtype], v, n]);
  }

  addInto(dst: DeviceBuffer, src: DeviceBuffer, view: View): void {
    this.alive('addInto');
    const d = arg(this, 'addInto', 'dst', dst, 0, 'float');
    const n = checkView('addInto', view, 'dst', d.size);
    const s = arg(this, 'addInto', 'src', src, n, 'float');
    if (d === s) throw new Error('addInto: dst and src are the same buffer');
    if (n === 0) return;
    this.rt.launch('add_into', [this.grid(n)], [THREADS], 0, [
      d.ptr,
      DTYPE_CODE[d.dtype],
      s.ptr,
      DTYPE_CODE[s.dtype],
      simplifyView(view),
      n,
    ]);
  }

  // --- elementwise ----------------------------------------------------------------------------

  unary(op: UnaryOp, out: DeviceBuffer, x: DeviceBuffer): void {
    this.alive('unary');
    const K = `unary(${op})`;
    if (!(op in UNARY_CODE)) throw new Error(`unary: unknown op ${JSON.stringify(op)}`);
    const o = arg(this, K, 'out', out, 0, 'float');
    const n = o.size;
    const xb = same(this, K, 'x', x, n, 'float');
    this.rt.launch('unary', [this.grid(n)], [THREADS], 0, [UNARY_CODE[op], o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], n]);
  }

  unaryBackward(op: UnaryOp, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, y: DeviceBuffer): void {
    this.alive('unaryBackward');
    const K = `unaryBackward(${op})`;
    if (!(op in UNARY_CODE)) throw new Error(`unaryBackward: unknown op ${JSON.stringify(op)}`);
    const o = arg(this, K, 'dx', dx, 0, 'float');
    const n = o.size;
    const g = same(this, K, 'dy', dy, n, 'float');
    const usesY = op === 'exp' || op === 'sqrt' || op === 'rsqrt' || op === 'sigmoid' || op === 'tanh';
    const v = usesY ? same(this, K, 'y', y, n, 'float') : same(this, K, 'x', x, n, 'float');
    this.rt.launch('unary_backward', [this.grid(n)], [THREADS], 0, [
      UNARY_CODE[op],
      o.ptr,
      DTYPE_CODE[o.dtype],
      g.ptr,
      DTYPE_CODE[g.dtype],
      v.ptr,
      DTYPE_CODE[v.dtype],
      n,
    ]);
  }

  affine(out: DeviceBuffer, x: DeviceBuffer, alpha: number, beta: number): void {
    this.alive('affine');
    finite('affine', 'alpha', alpha);
    finite('affine', 'beta', beta);
    const o = arg(this, 'affine', 'out', out, 0, 'float');
    const n = o.size;
    const xb = same(this, 'affine', 'x', x, n, 'float');
    this.rt.launch('affine', [this.grid(n)], [THREADS], 0, [o.ptr, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], alpha, beta, n]);
  }

  binary(op: BinaryOp, out: DeviceBuffer, a: DeviceBuffer, aView: View, b: DeviceBuffer, bView: View): void {
    this.alive('binary');
    const K = `binary(${op})`;
    if (!(op in BINARY_CODE)) throw new Error(`binary: unknown op ${JSON.stringify(op)}`);
    const ab = arg(this, K, 'a', a, 0, 'float');
    const bb = arg(this, K, 'b', b, 0, 'float');
    const n = checkView(K, aView, 'a', ab.size);
    checkView(K, bView, 'b', bb.size, aView.shape);
    const o = arg(this, K, 'out', out, n, 'float');
    if (n === 0) return;
    const [va, vb] = simplifyViews(aView, bView);
    // An output that aliases an operand read through a non-identity view would race: read a copy.
    const temps: Block[] = [];
    let pa = ab.ptr;
    let pb = bb.ptr;
    if (o === ab && !isIdentity(va)) {
      const t = this.temp(ab.byteLength);
      this.rt.copyDtoD(t.ptr, ab.ptr, ab.byteLength);
      pa = t.ptr;
      temps.push(t);
    }
    if (o === bb && !isIdentity(vb)) {
      const t = this.temp(bb.byteLength);
      this.rt.copyDtoD(t.ptr, bb.ptr, bb.byteLength);
      pb = t.ptr;
      temps.push(t);
    }
    this.rt.launch('binary', [this.grid(n)], [THREADS], 0, [
      BINARY_CODE[op],
      o.ptr,
      DTYPE_CODE[o.dtype],
      pa,
      DTYPE_CODE[ab.dtype],
      va,
      pb,
      DTYPE_CODE[bb.dtype],
      vb,
      n,
    ]);
    for (const t of temps) this.rt.release(t);
  }

  reduce(op: ReduceOp, out: DeviceBuffer, x: DeviceBuffer, outer: number, reduce: number, inner: number): void {
    this.alive('reduce');
    const K = `reduce(${op})`;
    counts(K, { outer, reduce, inner });
    if (op !== 'sum' && op !== 'max') throw new Error(`reduce: unknown op ${JSON.stringify(op)}`);
    const o = arg(this, K, 'out', out, outer * inner, 'float');
    const xb = arg(this, K, 'x', x, outer * reduce * inner, 'float');
    if (outer * inner === 0) return;
    const code = op === 'sum' ? 0 : 1;
    const t = o === xb ? this.temp(outer * inner * bytesPerElement(o.dtype)) : null;
    const dst = t ? t.ptr : o.ptr;
    if (inner === 1) {
      const threads = Math.min(THREADS, Math.max(32, Math.ceil(reduce / 32) * 32));
      this.rt.launch('reduce_rows', [outer], [threads], 0, [code, dst, DTYPE_CODE[o.dtype], xb.ptr, DTYPE_CODE[xb.dtype], reduce]);
    } else {
      this.rt.launch('reduce_axis', [outer * Math.ceil(inner / 32)], [32, 8], 0, [
        code,
        dst,
        DTYPE_CODE[o.dtype],
        xb.ptr,
        DTYPE_CODE[xb.dtype],
        outer,
        reduce,
        inner,
      ]);
    }
    if (t) {
      this.rt.copyDtoD(o.ptr, t.ptr, outer * inner * bytesPerElement(o.dtype));
      this.rt.release(t);
    }
  }

  argmax(out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
    this.alive('argmax');
    counts('argmax', { rows, cols });
    if (cols === 0 && rows > 0) throw new Error('argmax: cols is 0, so the rows have no largest element');
    const o = arg(this, 'argmax', 'out', out, rows, 'int32');
    const xb = arg(this, 'argmax', 'x', x, rows * cols, 'float');
    if (rows === 0) return;
    const threads = Math.min(THREADS, Math.max(32, Math.ceil(cols / 32) * 32));
    this.rt.launch('argmax_rows', [rows], [threads], 0, [o.ptr, xb.ptr, DTYPE_CODE[xb.dtype], cols]);
  }

  // --- matmul ---------------------------------------------------------------------------------

  matmul(out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
    this.alive('matmul');
    const { batch, m, n, k, strideA, strideB, strideOut, alpha, accumulate, transA, transB } = p;
    counts('matmul', { batch, m, n, k, strideA, strideB, strideOut });
    finite('matmul', 'alpha', alpha);
    const span = (stride: number, size: number) => (batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size);
    const ab = arg(this, 'matmul', 'a', a, span(strideA, m * k), 'float');
    const bb = arg(this, 'matmul', 'b', b, span(strideB, k * n), 'float');
    const ob = arg(this, 'matmul', 'out', out, span(strideOut, m * n), 'float');
    if (ob === ab || ob === bb) throw new Error('matmul: out must not be the same buffer as a or b');
    if (batch === 0 || m === 0 || n === 0) return;
    for (const [key, v] of [
      ['m', m],
      ['n', n],
      ['k', k],
    ] as const) {
      if (v > 2147483647) throw new Error(`matmul: ${key} = ${v} is larger than 2^31 − 1`);
    }
    const sumBatch = batch > 1 && strideOut === 0;
    if (k === 0) {
      if (accumulate) return;
      if (sumBatch || strideOut === m * n) this.fill(ob, 0);
      else for (let i = 0; i < batch; i++) this.fillRange(ob, i * strideOut, m * n);
      return;
    }
    const call = {
      m,
      n,
      k,
      transA,
      transB,
      batch,
      strideA,
      strideB,
      strideOut,
      dtA: ab.dtype,
      dtB: bb.dtype,
      dtOut: ob.dtype,
      a: ab.ptr,
      b: bb.ptr,
      out: ob.ptr,
      alpha,
      accumulate,
    };
    if (!sumBatch && batch === 1 && this.skinny(call)) return;
    if (this.lt) {
      // Σ_b op(a_b)·op(b_b) is one GEMM over k' = batch·k when the batch's matrices stack along k.
      if (sumBatch && (transA ? strideA === k * m : m === 1 && strideA === k) && (!transB ? strideB === k * n : n === 1 && strideB === k)) {
        const merged = { ...call, batch: 1, k: batch * k, strideA: 0, strideB: 0, strideOut: 0 };
        if (this.ltMatmul(merged, span(strideA, m * k), span(strideB, k * n))) return;
      } else if (!sumBatch && batch <= 65535 * 64 && this.ltMatmul(call, span(strideA, m * k), span(strideB, k * n))) {
        return;
      }
    }
    if (!sumBatch && batch > 65535) throw new Error(`matmul: batch ${batch} is larger than the tiled kernel's 65535`);
    this.gemmCounts.tiled++;
    this.rt.launch('gemm_tiled', [Math.ceil(n / 64), Math.ceil(m / 64), sumBatch ? 1 : batch], [256], 0, [
      ob.ptr,
      DTYPE_CODE[ob.dtype],
      ab.ptr,
      DTYPE_CODE[ab.dtype],
      bb.ptr,
      DTYPE_CODE[bb.dtype],
      m,
      n,
      k,
      transA ? 1 : 0,
      transB ? 1 : 0,
      strideA,
      strideB,
      strideOut,
      batch,
      sumBatch ? 1 : 0,
      alpha,
      accumulate ? 1 : 0,
    ]);
  }

  /**
   * The GEMM on cuBLASLt, which takes operands of one dtype. A 16-bit operand against a float32
   * one (LoRA's bfloat16 activations against its float32 adapter weights, forward and backward)
   * runs in float32: the 16-bit operand is widened into a temporary (exactly), and a 16-bit output
   * of float32 operands is computed in a float32 temporary and rounded once, so the arithmetic is
   * the tiled kernel's, on cuBLASLt's GEMMs. Returns false when cuBLASLt cannot take the call
   * (then the tiled kernel does), e.g. a 16-bit output with gaps between its batch matrices.
   * spanA/spanB: elements of a and b the call reads.
   */
  private ltMatmul(call: GemmCall, spanA: number, spanB: number): boolean {
    const lt = this.lt!;
    if (CublasLt.supports(call)) {
      if (!lt.matmul(call)) return false;
      this.gemmCounts.cublasLt++;
      return true;
    }
    const wide = call.dtA === 'float32' || call.dtB === 'float32' || call.dtOut === 'float32';
    const spanOut = call.batch > 1 ? (call.batch - 1) * call.strideOut + call.m * call.n : call.m * call.n;
    if (!wide || (call.dtOut !== 'float32' && call.batch > 1 && call.strideOut !== call.m * call.n)) return false;
    const temps: Block[] = [];
    const widen = (ptr: number, dtype: DType, count: number): number => {
      if (dtype === 'float32') return ptr;
      const t = this.temp(count * 4);
      temps.push(t);
      this.convert(t.ptr, 'float32', ptr, dtype, count);
      return t.ptr;
    };
    try {
      const promoted: GemmCall = {
        ...call,
        a: widen(call.a, call.dtA, spanA),
        b: widen(call.b, call.dtB, spanB),
        out: call.dtOut === 'float32' ? call.out : 0,
        dtA: 'float32',
        dtB: 'float32',
        dtOut: 'float32',
      };
      if (call.dtOut !== 'float32') {
        const t = this.temp(spanOut * 4);
        temps.push(t);
        if (call.accumulate) this.convert(t.ptr, 'float32', call.out, call.dtOut, spanOut);
        promoted.out = t.ptr;
      }
      if (!lt.matmul(promoted)) return false;
      if (call.dtOut !== 'float32') this.convert(call.out, call.dtOut, promoted.out, 'float32', spanOut);
      this.gemmCounts.cublasLt++;
      return true;
    } finally {
      // Stream order: the blocks' next users run after the work enqueued here.
      for (const t of temps) this.rt.release(t);
    }
  }

  /**
   * One GEMM (batch 1) on kernels/matmul_skinny.cu when it is a 16-bit operand against a float32
   * one with a float32 output and a small side: a 16-bit a [m, k] times a float32 op(b) with n ≤ 64
   * (x · Aᵀ), or a float32 op(a) with m ≤ 64 times a 16-bit b [k, n] (dhᵀ · x). The second splits k
   * into chunks for enough blocks and adds their partial sums in order. False for any other call.
   */
  private skinny(c: GemmCall): boolean {
    if (!this.mixedKernels || c.dtOut !== 'float32') return false;
    const a16 = c.dtA !== 'float32';
    const b16 = c.dtB !== 'float32';
    const accumulate = c.accumulate ? 1 : 0;
    if (a16 && !b16 && !c.transA && c.n <= 64) {
      const nt = c.n <= 16 ? 16 : c.n <= 32 ? 32 : 64;
      const rows = nt === 16 ? 16 : 8; // 8 warps of 2 rows (n ≤ 16) or 1
      this.rt.launch(`gemm_skinny_n_${nt}` as KernelName, [Math.ceil(c.m / rows)], [256], 0, [
        c.out,
        c.a,
        DTYPE_CODE[c.dtA],
        c.b,
        c.transB ? 1 : 0,
        c.m,
        c.n,
        c.k,
        c.alpha,
        accumulate,
      ]);
    } else if (!a16 && b16 && !c.transB && c.m <= 64) {
      const mt = c.m <= 16 ? 16 : c.m <= 32 ? 32 : 64;
      const cols = Math.ceil(c.n / 256);
      // About two blocks per multiprocessor, in chunks of whole 32-row tiles of k.
      const tiles = Math.ceil(c.k / 32);
      let splits = Math.min(tiles, 65535, Math.max(1, Math.ceil((2 * this.rt.info.multiprocessors) / cols)));
      const chunk = Math.ceil(tiles / splits) * 32;
      splits = Math.ceil(c.k / chunk);
      const part = splits > 1 ? this.temp(splits * c.m * c.n * 4) : null;
      try {
        this.rt.launch(`gemm_skinny_m_${mt}` as KernelName, [cols, splits], [256], 0, [
          c.out,
          part?.ptr ?? 0,
          c.a,
          c.transA ? 1 : 0,
          c.b,
          DTYPE_CODE[c.dtB],
          c.m,
          c.n,
          c.k,
          chunk,
          c.alpha,
          accumulate,
        ]);
        if (part)
          this.rt.launch('skinny_sum', [this.grid(c.m * c.n)], [THREADS], 0, [c.out, part.ptr, splits, c.m * c.n, c.alpha, accumulate]);
      } finally {
        // Stream order: the block's next user runs after the sum.
        if (part) this.rt.release(part);
      }
    } else {
      return false;
    }
    this.gemmCounts.skinny++;
    return true;
  }

  /** Contiguous dtype conversion of `count` elements, device address to device address. */
  private convert(out: number, dtOut: DType, x: number, dtX: DType, count: number): void {
    const v: KernelView = { shape: [count], strides: [1], offset: 0 };
    this.rt.launch('copy_convert', [this.grid(count)], [THREADS], 0, [out, DTYPE_CODE[dtOut], x, DTYPE_CODE[dtX], v, count]);
  }

  /** Zeros `count` elements of `buf` from element `at`. */
  private fillRange(buf: CudaBuffer, at: number, count: number): void {
    const bpe = bytesPerElement(buf.dtype);
    if (bpe === 4) this.rt.memsetD32(buf.ptr + at * 4, 0, count);
    else this.rt.memsetD16(buf.ptr + at * 2, 0, count);
  }

  // --- embedding ------------------------------------------------------------------------------

  embedding(out: DeviceBuffer, weight: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    this.alive('embedding');
    counts('embedding', { n, dim });
    const o = arg(this, 'embedding', 'out', out, n * dim, 'float');
    const w = arg(this, 'embedding', 'weight', weight, dim, 'float');
    const idx = arg(this, 'embedding', 'ids', ids, n, 'int32');
    const rows = rowsOf('embedding', w.size, dim);
    if (n * dim === 0) return;
    this.rt.launch('embedding', [this.grid(n * dim)], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      w.ptr,
      DTYPE_CODE[w.dtype],
      idx.ptr,
      n,
      dim,
      rows,
    ]);
  }

  embeddingBackward(dWeight: DeviceBuffer, dOut: DeviceBuffer, ids: DeviceBuffer, n: number, dim: number): void {
    this.alive('embeddingBackward');
    const K = 'embeddingBackward';
    counts(K, { n, dim });
    const dw = arg(this, K, 'dWeight', dWeight, dim, 'float');
    const rows = rowsOf(K, dw.size, dim);
    const g = arg(this, K, 'dOut', dOut, n * dim, 'float');
    const idx = arg(this, K, 'ids', ids, n, 'int32');
    if (rows * dim === 0) return;
    const acc = dw.dtype === 'float32' ? null : this.temp(rows * dim * 4);
    const accPtr = acc ? acc.ptr : dw.ptr;
    this.rt.memsetD32(accPtr, 0, rows * dim);
    if (n * dim > 0)
      this.rt.launch('embedding_backward', [this.grid(n * dim)], [THREADS], 0, [accPtr, g.ptr, DTYPE_CODE[g.dtype], idx.ptr, n, dim, rows]);
    if (acc) {
      const count = rows * dim;
      this.rt.launch('copy_convert', [this.grid(count)], [THREADS], 0, [
        dw.ptr,
        DTYPE_CODE[dw.dtype],
        acc.ptr,
        DTYPE_CODE.float32,
        { shape: [count], strides: [1], offset: 0 },
        count,
      ]);
      this.rt.release(acc);
    }
  }

  // --- norms ----------------------------------------------------------------------------------

  private rowThreads(dim: number): number {
    return Math.min(1024, Math.max(32, Math.ceil(Math.min(dim, THREADS * 4) / 4 / 32) * 32));
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
    this.normForward('layerNorm', out, mean, rstd, x, weight, bias, p);
  }

  rmsNorm(out: DeviceBuffer, rstd: DeviceBuffer, x: DeviceBuffer, weight: DeviceBuffer | null, p: NormParams): void {
    this.alive('rmsNorm');
    this.normForward('rmsNorm', out, null, rstd, x, weight, null, p);
  }

  private normForward(
    K: string,
    out: DeviceBuffer,
    mean: DeviceBuffer | null,
    rstd: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    bias: DeviceBuffer | null,
    p: NormParams,
  ): void {
    checkNorm(K, p);
    const { rows, dim, eps } = p;
    const o = arg(this, K, 'out', out, rows * dim, 'float');
    const mb = mean === null ? null : arg(this, K, 'mean', mean, rows, 'float32');
    const rb = arg(this, K, 'rstd', rstd, rows, 'float32');
    const xb = arg(this, K, 'x', x, rows * dim, 'float');
    const w = weight === null ? null : arg(this, K, 'weight', weight, dim, 'float');
    const b = bias === null ? null : arg(this, K, 'bias', bias, dim, 'float');
    if (rows === 0) return;
    this.rt.launch('layer_norm', [rows], [this.rowThreads(dim)], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      mb?.ptr ?? 0,
      rb.ptr,
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      w?.ptr ?? 0,
      w ? DTYPE_CODE[w.dtype] : 0,
      b?.ptr ?? 0,
      b ? DTYPE_CODE[b.dtype] : 0,
      dim,
      eps,
      mean === null ? 1 : 0,
    ]);
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
    this.normBackward('layerNormBackward', dx, dWeight, dBias, dy, x, weight, mean, rstd, p);
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
    this.normBackward('rmsNormBackward', dx, dWeight, null, dy, x, weight, null, rstd, p);
  }

  private normBackward(
    K: string,
    dx: DeviceBuffer,
    dWeight: DeviceBuffer | null,
    dBias: DeviceBuffer | null,
    dy: DeviceBuffer,
    x: DeviceBuffer,
    weight: DeviceBuffer | null,
    mean: DeviceBuffer | null,
    rstd: DeviceBuffer,
    p: NormParams,
  ): void {
    checkNorm(K, p);
    const { rows, dim } = p;
    const o = arg(this, K, 'dx', dx, rows * dim, 'float');
    const dw = dWeight === null ? null : arg(this, K, 'dWeight', dWeight, dim, 'float32');
    const db = dBias === null ? null : arg(this, K, 'dBias', dBias, dim, 'float32');
    const g = arg(this, K, 'dy', dy, rows * dim, 'float');
    const xb = arg(this, K, 'x', x, rows * dim, 'float');
    const w = weight === null ? null : arg(this, K, 'weight', weight, dim, 'float');
    const mb = mean === null ? null : arg(this, K, 'mean', mean, rows, 'float32');
    const rb = arg(this, K, 'rstd', rstd, rows, 'float32');
    // Parameter gradients first: dx may overwrite dy or x.
    if ((dw || db) && dim > 0) {
      if (dw) this.rt.memsetD32(dw.ptr, 0, dim);
      if (db) this.rt.memsetD32(db.ptr, 0, dim);
      if (rows > 0) {
        const colBlocks = Math.ceil(dim / THREADS);
        const chunks = Math.max(1, Math.min(rows, 65535, Math.ceil((this.rt.info.multiprocessors * 8) / colBlocks)));
        const perChunk = Math.ceil(rows / chunks);
        this.rt.launch('norm_param_grad', [colBlocks, Math.ceil(rows / perChunk)], [THREADS], 0, [
          dw?.ptr ?? 0,
          db?.ptr ?? 0,
          g.ptr,
          DTYPE_CODE[g.dtype],
          xb.ptr,
          DTYPE_CODE[xb.dtype],
          mb?.ptr ?? 0,
          rb.ptr,
          rows,
          dim,
          perChunk,
        ]);
      }
    }
    if (rows === 0) return;
    this.rt.launch('layer_norm_backward', [rows], [this.rowThreads(dim)], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      g.ptr,
      DTYPE_CODE[g.dtype],
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      w?.ptr ?? 0,
      w ? DTYPE_CODE[w.dtype] : 0,
      mb?.ptr ?? 0,
      rb.ptr,
      dim,
    ]);
  }

  // --- rotary ---------------------------------------------------------------------------------

  rotary(out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    this.alive('rotary');
    this.rotate('rotary', ['out', 'x'], out, x, positions, p, 1);
  }

  rotaryBackward(dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    this.alive('rotaryBackward');
    this.rotate('rotaryBackward', ['dx', 'dy'], dx, dy, positions, p, -1);
  }

  private rotate(
    K: string,
    names: [string, string],
    out: DeviceBuffer,
    x: DeviceBuffer,
    positions: DeviceBuffer,
    p: RotaryParams,
    sign: number,
  ): void {
    const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
    counts(K, { batch, seq, heads, headDim, rotaryDim });
    finite(K, 'base', base);
    finite(K, 'positionScale', positionScale);
    if (rotaryDim % 2 !== 0 || rotaryDim > headDim)
      throw new Error(`${K}: rotaryDim ${rotaryDim} must be even and at most headDim ${headDim}`);
    if (!(base > 0) || !(positionScale > 0)) throw new Error(`${K}: base (${base}) and positionScale (${positionScale}) must be positive`);
    const n = batch * seq * heads * headDim;
    const o = arg(this, K, names[0], out, n, 'float');
    const xb = arg(this, K, names[1], x, n, 'float');
    const pos = arg(this, K, 'positions', positions, batch * seq, 'int32');
    const tokens = batch * seq;
    const work = tokens * heads * (rotaryDim / 2 + headDim - rotaryDim);
    if (work === 0) return;
    this.rt.launch('rotary', [this.grid(work)], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      pos.ptr,
      tokens,
      heads,
      headDim,
      rotaryDim,
      base,
      positionScale,
      sign,
    ]);
  }

  // --- attention ------------------------------------------------------------------------------

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
    const K = 'attention';
    const { nq, nk, nv } = checkAttention(K, p);
    const o = arg(this, K, 'out', out, nq, 'float');
    const l = arg(this, K, 'lse', lse, p.batch * p.heads * p.seqQ, 'float32');
    const qb = arg(this, K, 'q', q, nq, 'float');
    const kb = arg(this, K, 'k', k, nk, 'float');
    const vb = arg(this, K, 'v', v, nk, 'float');
    const mb = mask === null ? null : arg(this, K, 'mask', mask, p.batch * p.seqK, 'int32');
    if (o === qb || o === kb || o === vb) throw new Error('attention: out must not be the same buffer as q, k or v');
    if (p.batch * p.heads * p.seqQ === 0) return;
    const D = p.headDim;
    const half = this.tcDtype(qb, kb, vb, D);
    if (half) {
      this.rt.launch(`attention_fwd_tc_${half}_${D}` as KernelName, [Math.ceil(p.seqQ / 64), p.heads, p.batch], [128], 0, [
        o.ptr,
        DTYPE_CODE[o.dtype],
        l.ptr,
        qb.ptr,
        kb.ptr,
        vb.ptr,
        mb?.ptr ?? 0,
        attnShape(p),
      ]);
      return;
    }
    const smem = (16 * D + 32 * (D + 1) + 32 * D) * 4;
    this.rt.launch(`attention_fwd_${nv}`, [Math.ceil(p.seqQ / 16), p.heads, p.batch], [128], smem, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      l.ptr,
      qb.ptr,
      DTYPE_CODE[qb.dtype],
      kb.ptr,
      DTYPE_CODE[kb.dtype],
      vb.ptr,
      DTYPE_CODE[vb.dtype],
      mb?.ptr ?? 0,
      attnShape(p),
    ]);
  }

  /** The tensor-core attention kernels' dtype name, when they apply: q, k and v of one 16-bit dtype, D = 64 or 128, sm_80+. */
  private tcDtype(q: CudaBuffer, k: CudaBuffer, v: CudaBuffer, D: number): 'bf16' | 'f16' | null {
    if (!this.tensorCores || k.dtype !== q.dtype || v.dtype !== q.dtype || (D !== 64 && D !== 128)) return null;
    return q.dtype === 'bfloat16' ? 'bf16' : q.dtype === 'float16' ? 'f16' : null;
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
    const K = 'attentionBackward';
    const { nq, nk, nv } = checkAttention(K, p);
    const dqb = arg(this, K, 'dq', dq, nq, 'float');
    const dkb = arg(this, K, 'dk', dk, nk, 'float');
    const dvb = arg(this, K, 'dv', dv, nk, 'float');
    const g = arg(this, K, 'dOut', dOut, nq, 'float');
    const qb = arg(this, K, 'q', q, nq, 'float');
    const kb = arg(this, K, 'k', k, nk, 'float');
    const vb = arg(this, K, 'v', v, nk, 'float');
    const ob = arg(this, K, 'out', out, nq, 'float'); // validated only: delta_i comes from P and dP (see attention_tc.cu)
    const l = arg(this, K, 'lse', lse, p.batch * p.heads * p.seqQ, 'float32');
    const mb = mask === null ? null : arg(this, K, 'mask', mask, p.batch * p.seqK, 'int32');
    for (const [name, buf] of [
      ['dq', dqb],
      ['dk', dkb],
      ['dv', dvb],
    ] as const) {
      if (buf === g || buf === qb || buf === kb || buf === vb || buf === ob) {
        throw new Error(`attentionBackward: ${name} must not be the same buffer as an input`);
      }
    }
    const D = p.headDim;
    const rowsQ = p.batch * p.heads * p.seqQ;
    if (nk > 0 && p.seqQ === 0) {
      this.fillRange(dkb, 0, nk);
      this.fillRange(dvb, 0, nk);
    }
    if (rowsQ === 0) return;
    const delta = this.temp(rowsQ * 4);
    const shape = attnShape(p);
    const half = this.tcDtype(qb, kb, vb, D);
    if (half && g.dtype === qb.dtype) {
      // dq first: it sums delta_i = Σ_j P_ij·dP_ij, which the dk/dv kernel reads.
      this.rt.launch(`attention_bwd_dq_tc_${half}_${D}` as KernelName, [Math.ceil(p.seqQ / 64), p.heads, p.batch], [128], 0, [
        dqb.ptr,
        DTYPE_CODE[dqb.dtype],
        delta.ptr,
        g.ptr,
        qb.ptr,
        kb.ptr,
        vb.ptr,
        l.ptr,
        mb?.ptr ?? 0,
        shape,
      ]);
      if (p.seqK > 0) {
        // Shared memory: the block's 64 keys and values, a 32-query tile of q and dO (16-bit, rows padded by 8), lse and delta of the tile.
        const smem = (2 * 64 + 2 * 32) * (D + 8) * 2 + 64 * 4;
        this.rt.launch(`attention_bwd_dkdv_tc_${half}_${D}` as KernelName, [Math.ceil(p.seqK / 64), p.kvHeads, p.batch], [128], smem, [
          dkb.ptr,
          DTYPE_CODE[dkb.dtype],
          dvb.ptr,
          DTYPE_CODE[dvb.dtype],
          g.ptr,
          qb.ptr,
          kb.ptr,
          vb.ptr,
          l.ptr,
          delta.ptr,
          mb?.ptr ?? 0,
          shape,
        ]);
      }
      this.rt.release(delta);
      return;
    }
    const ptrs = [g.ptr, DTYPE_CODE[g.dtype], qb.ptr, DTYPE_CODE[qb.dtype], kb.ptr, DTYPE_CODE[kb.dtype], vb.ptr, DTYPE_CODE[vb.dtype]];
    this.rt.launch(`attention_bwd_dq_${nv}`, [Math.ceil(p.seqQ / 16), p.heads, p.batch], [128], (32 * D + 64 * (D + 1)) * 4, [
      dqb.ptr,
      DTYPE_CODE[dqb.dtype],
      delta.ptr,
      ...ptrs,
      l.ptr,
      mb?.ptr ?? 0,
      shape,
    ]);
    if (p.seqK > 0) {
      this.rt.launch(`attention_bwd_dkdv_${nv}`, [Math.ceil(p.seqK / 16), p.kvHeads, p.batch], [128], (32 * D + 64 * (D + 1) + 64) * 4, [
        dkb.ptr,
        DTYPE_CODE[dkb.dtype],
        dvb.ptr,
        DTYPE_CODE[dvb.dtype],
        ...ptrs,
        l.ptr,
        delta.ptr,
        mb?.ptr ?? 0,
        shape,
      ]);
    }
    this.rt.release(delta);
  }

  // --- activations ----------------------------------------------------------------------------

  gelu(out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    this.alive('gelu');
    const o = arg(this, 'gelu', 'out', out, 0, 'float');
    const n = o.size;
    const xb = same(this, 'gelu', 'x', x, n, 'float');
    this.rt.launch('gelu', [this.grid(n)], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      approximate ? 1 : 0,
      n,
    ]);
  }

  geluBackward(dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
    this.alive('geluBackward');
    const o = arg(this, 'geluBackward', 'dx', dx, 0, 'float');
    const n = o.size;
    const g = same(this, 'geluBackward', 'dy', dy, n, 'float');
    const xb = same(this, 'geluBackward', 'x', x, n, 'float');
    this.rt.launch('gelu_backward', [this.grid(n)], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      g.ptr,
      DTYPE_CODE[g.dtype],
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      approximate ? 1 : 0,
      n,
    ]);
  }

  siluMul(out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    this.alive('siluMul');
    const o = arg(this, 'siluMul', 'out', out, 0, 'float');
    const n = o.size;
    const gb = same(this, 'siluMul', 'gate', gate, n, 'float');
    const ub = same(this, 'siluMul', 'up', up, n, 'float');
    this.rt.launch('silu_mul', [this.grid(n)], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      gb.ptr,
      DTYPE_CODE[gb.dtype],
      ub.ptr,
      DTYPE_CODE[ub.dtype],
      n,
    ]);
  }

  siluMulBackward(dGate: DeviceBuffer, dUp: DeviceBuffer, dy: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
    this.alive('siluMulBackward');
    const K = 'siluMulBackward';
    const dg = arg(this, K, 'dGate', dGate, 0, 'float');
    const n = dg.size;
    const du = same(this, K, 'dUp', dUp, n, 'float');
    if (dg === du) throw new Error(`${K}: dGate and dUp must be different buffers`);
    const g = same(this, K, 'dy', dy, n, 'float');
    const gb = same(this, K, 'gate', gate, n, 'float');
    const ub = same(this, K, 'up', up, n, 'float');
    this.rt.launch('silu_mul_backward', [this.grid(n)], [THREADS], 0, [
      dg.ptr,
      DTYPE_CODE[dg.dtype],
      du.ptr,
      DTYPE_CODE[du.dtype],
      g.ptr,
      DTYPE_CODE[g.dtype],
      gb.ptr,
      DTYPE_CODE[gb.dtype],
      ub.ptr,
      DTYPE_CODE[ub.dtype],
      n,
    ]);
  }

  // --- loss -----------------------------------------------------------------------------------

  crossEntropy(loss: DeviceBuffer, lse: DeviceBuffer, logits: DeviceBuffer, targets: DeviceBuffer, p: CrossEntropyParams): void {
    this.alive('crossEntropy');
    const K = 'crossEntropy';
    const { rows, classes } = p;
    counts(K, { rows, classes });
    checkIgnore(K, p.ignoreIndex);
    const lo = arg(this, K, 'loss', loss, rows, 'float32');
    const ls = arg(this, K, 'lse', lse, rows, 'float32');
    const x = arg(this, K, 'logits', logits, rows * classes, 'float');
    const t = arg(this, K, 'targets', targets, rows, 'int32');
    if (rows === 0) return;
    const threads = Math.min(THREADS * 2, Math.max(32, Math.ceil(classes / 32) * 32));
    this.rt.launch('cross_entropy', [rows], [threads], 0, [lo.ptr, ls.ptr, x.ptr, DTYPE_CODE[x.dtype], t.ptr, classes, p.ignoreIndex]);
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
    const K = 'crossEntropyBackward';
    const { rows, classes } = p;
    counts(K, { rows, classes });
    checkIgnore(K, p.ignoreIndex);
    const o = arg(this, K, 'dLogits', dLogits, rows * classes, 'float');
    const g = arg(this, K, 'dLoss', dLoss, rows, 'float');
    const x = arg(this, K, 'logits', logits, rows * classes, 'float');
    const t = arg(this, K, 'targets', targets, rows, 'int32');
    const ls = arg(this, K, 'lse', lse, rows, 'float32');
    if (rows * classes === 0) return;
    const chunks = Math.max(1, Math.min(65535, Math.ceil(classes / THREADS / 4)));
    this.rt.launch('cross_entropy_backward', [rows, chunks], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      g.ptr,
      DTYPE_CODE[g.dtype],
      x.ptr,
      DTYPE_CODE[x.dtype],
      t.ptr,
      ls.ptr,
      classes,
      p.ignoreIndex,
    ]);
  }

  // --- randomness -----------------------------------------------------------------------------

  random(out: DeviceBuffer, p: RandomParams): void {
    this.alive('random');
    const o = arg(this, 'random', 'out', out, 0, 'float');
    finite('random', 'low', p.low);
    finite('random', 'high', p.high);
    if (p.distribution !== 'uniform' && p.distribution !== 'normal') {
      throw new Error(`random: distribution ${JSON.stringify(p.distribution)} is not supported: use uniform or normal`);
    }
    const [k0, k1] = splitKey(p.seed);
    checkOffset('random', p.offset);
    const n = o.size;
    if (n === 0) return;
    this.notCapturing('random');
    this.rt.launch('random_fill', [this.grid(Math.ceil(n / 4))], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      k0,
      k1,
      BigInt(p.offset),
      p.distribution === 'uniform' ? 0 : 1,
      p.low,
      p.high,
      n,
    ]);
  }

  dropout(out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
    this.alive('dropout');
    this.mask('dropout', ['out', 'x'], out, x, p);
  }

  dropoutBackward(dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
    this.alive('dropoutBackward');
    this.mask('dropoutBackward', ['dx', 'dy'], dx, dy, p);
  }

  /** Philox's (seed, offset) are launch arguments: a graph would replay the same numbers on every launch. */
  private notCapturing(K: string): void {
    if (this.rt.capturing) {
      throw new Error(
        `${K}: random numbers cannot be captured in a CUDA graph (every replay would draw the same ones): turn dropout off (p = 0) in a captured step, or run it eagerly`,
      );
    }
  }

  private mask(K: string, names: [string, string], out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
    finite(K, 'p', p.p);
    if (p.p < 0 || p.p > 1) throw new Error(`${K}: p must be in [0, 1], got ${p.p}`);
    const o = arg(this, K, names[0], out, 0, 'float');
    const n = o.size;
    const xb = same(this, K, names[1], x, n, 'float');
    const [k0, k1] = splitKey(p.seed);
    checkOffset(K, p.offset);
    if (n === 0) return;
    if (p.p > 0) this.notCapturing(K);
    this.rt.launch('dropout', [this.grid(Math.ceil(n / 4))], [THREADS], 0, [
      o.ptr,
      DTYPE_CODE[o.dtype],
      xb.ptr,
      DTYPE_CODE[xb.dtype],
      k0,
      k1,
      BigInt(p.offset),
      Math.fround(p.p),
      p.p < 1 ? 1 / (1 - p.p) : 0,
      n,
    ]);
  }

  // --- optimizer ------------------------------------------------------------------------------

  adamw(param: DeviceBuffer, grad: DeviceBuffer, m: DeviceBuffer, v: DeviceBuffer, p: AdamWParams, scalars?: DeviceBuffer | null): void {
    this.alive('adamw');
    const K = 'adamw';
    for (const key of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'gradScale'] as const) finite(K, key, p[key]);
    if (!Number.isSafeInteger(p.step) || p.step < 1) throw new Error(`${K}: step must be an integer ≥ 1 (it is 1-based), got ${p.step}`);
    const pb = arg(this, K, 'param', param, 0, 'float');
    const n = pb.size;
    const g = same(this, K, 'grad', grad, n, 'float');
    const mb = same(this, K, 'm', m, n, 'float32');
    const vb = same(this, K, 'v', v, n, 'float32');
    if (pb === g || pb === mb || pb === vb || mb === vb) throw new Error(`${K}: param, m and v must be distinct buffers`);
    const sb = scalars ? same(this, K, 'scalars', scalars, 4, 'float32') : null;
    if (n === 0) return;
    this.rt.launch('adamw', [this.grid(n)], [THREADS], 0, [
      pb.ptr,
      DTYPE_CODE[pb.dtype],
      g.ptr,
      DTYPE_CODE[g.dtype],
      mb.ptr,
      vb.ptr,
      p.lr,
      p.beta1,
      p.beta2,
      p.eps,
      1 - p.lr * p.weightDecay,
      1 - p.beta1 ** p.step,
      1 - p.beta2 ** p.step,
      p.gradScale,
      sb ? sb.ptr : 0,
      p.weightDecay,
      n,
    ]);
  }
}

/**
 * A CUDA backend on GPU `deviceIndex` (default 0). Throws when there is no usable driver or GPU:
 * call `isAvailable()` first to learn why without an exception.
 */
export function createCudaBackend(opts: CudaBackendOptions = {}): CudaBackend {
  return new CudaBackend(opts);
}

// --- argument checks shared by the kernels -------------------------------------------------------

/** Validates a view over a buffer of `size` elements (and its shape, when given); returns its element count. */
export function checkView(kernel: string, view: View, name: string, size: number, shape: readonly number[] = view.shape): number {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`${kernel}: view shape [${shape.join(',')}] has a bad dimension ${d}`);
    count *= d;
  }
  if (view.shape.length !== shape.length || view.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${kernel}: ${name} view has shape [${view.shape.join(',')}] but the op needs [${shape.join(',')}]`);
  }
  if (view.strides.length !== shape.length)
    throw new Error(`${kernel}: ${name} view has ${view.strides.length} strides for ${shape.length} dimensions`);
  if (!Number.isSafeInteger(view.offset) || view.offset < 0) {
    throw new Error(`${kernel}: ${name} view offset must be a non-negative integer, got ${view.offset}`);
  }
  if (count === 0) return 0;
  let min = view.offset;
  let max = view.offset;
  for (let d = 0; d < shape.length; d++) {
    const s = view.strides[d];
    if (!Number.isSafeInteger(s)) throw new Error(`${kernel}: ${name} view stride ${s} is not an integer`);
    const reach = (shape[d] - 1) * s;
    if (reach < 0) min += reach;
    else max += reach;
  }
  if (min < 0 || max >= size) {
    throw new Error(
      `${kernel}: ${name} view reaches elements ${min}..${max} but the buffer has ${size} (shape [${shape.join(',')}], strides [${view.strides.join(',')}], offset ${view.offset})`,
    );
  }
  return count;
}

/** Whether a (simplified) view reads element i at index i. */
function isIdentity(v: KernelView): boolean {
  return v.offset === 0 && v.shape.length === 1 && v.strides[0] === 1;
}

function rowsOf(kernel: string, size: number, dim: number): number {
  if (dim === 0) return 0;
  if (size % dim !== 0) throw new Error(`${kernel}: the weight buffer has ${size} elements, not a multiple of dim ${dim}`);
  return size / dim;
}

function checkNorm(kernel: string, p: NormParams): void {
  counts(kernel, { rows: p.rows, dim: p.dim });
  finite(kernel, 'eps', p.eps);
  if (p.eps < 0) throw new Error(`${kernel}: eps must be non-negative, got ${p.eps}`);
}

function checkIgnore(kernel: string, ignoreIndex: number): void {
  if (!Number.isSafeInteger(ignoreIndex) || ignoreIndex < -2147483648 || ignoreIndex > 2147483647) {
    throw new Error(`${kernel}: ignoreIndex must be a 32-bit integer, got ${ignoreIndex}`);
  }
}

function checkOffset(kernel: string, offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new Error(`${kernel}: offset must be a non-negative safe integer, got ${offset}`);
}

/** Sizes of q and k/v, and the feature-register variant (2, 4 or 8 per lane) for headDim. */
function checkAttention(K: string, p: AttentionParams): { nq: number; nk: number; nv: 2 | 4 | 8 } {
  counts(K, { batch: p.batch, seqQ: p.seqQ, seqK: p.seqK, heads: p.heads, kvHeads: p.kvHeads, headDim: p.headDim });
  finite(K, 'scale', p.scale);
  if (p.kvHeads === 0 ? p.heads !== 0 : p.heads % p.kvHeads !== 0)
    throw new Error(`${K}: heads ${p.heads} must be a multiple of kvHeads ${p.kvHeads}`);
  if (p.headDim > 256) throw new Error(`${K}: headDim ${p.headDim} is larger than the 256 these kernels support`);
  const nv = p.headDim <= 64 ? 2 : p.headDim <= 128 ? 4 : 8;
  return { nq: p.batch * p.seqQ * p.heads * p.headDim, nk: p.batch * p.seqK * p.kvHeads * p.headDim, nv };
}

function attnShape(p: AttentionParams) {
  return { batch: p.batch, seqQ: p.seqQ, seqK: p.seqK, heads: p.heads, kvHeads: p.kvHeads, D: p.headDim, scale: p.scale, causal: p.causal };
}
