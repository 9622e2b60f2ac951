/**
 * Host side of kernels/matmul.cu and kernels/matmul_skinny.cu: which GEMM a matmul runs on
 * (the skinny mixed-dtype kernels, cuBLASLt, or the tiled kernel) and its launch. Arguments are
 * checked in core (kernelChecks); the limits of the kernels' 32-bit sizes and grid are checked here.
 */
import { type DeviceBuffer, type DType, type KernelFamily, type MatmulParams, matmulSpan } from '@peft/core';
import type { Block } from '../allocator.js';
import type { CudaBuffer } from '../buffer.js';
import { CublasLt, type GemmCall } from '../cublaslt.js';
import { DTYPE_CODE, type KernelName } from '../kernels.js';
import { type Ctx, grid, THREADS, temp } from './common.js';
import { convert, fill, fillRange } from './copy.js';

function matmul(ctx: Ctx, out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
  const { batch, m, n, k, strideA, strideB, strideOut, alpha, accumulate, transA, transB } = p;
  const span = (stride: number, size: number) => matmulSpan(batch, stride, size);
  const ab = a as CudaBuffer;
  const bb = b as CudaBuffer;
  const ob = out as CudaBuffer;
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
    if (sumBatch || strideOut === m * n) fill(ctx, ob, 0);
    else for (let i = 0; i < batch; i++) fillRange(ctx, ob, i * strideOut, m * n);
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
  if (!sumBatch && batch === 1 && skinny(ctx, call)) return;
  if (ctx.lt) {
    // Σ_b op(a_b)·op(b_b) is one GEMM over k' = batch·k when the batch's matrices stack along k.
    if (sumBatch && (transA ? strideA === k * m : m === 1 && strideA === k) && (!transB ? strideB === k * n : n === 1 && strideB === k)) {
      const merged = { ...call, batch: 1, k: batch * k, strideA: 0, strideB: 0, strideOut: 0 };
      if (ltMatmul(ctx, merged, span(strideA, m * k), span(strideB, k * n))) return;
    } else if (!sumBatch && batch <= 65535 * 64 && ltMatmul(ctx, call, span(strideA, m * k), span(strideB, k * n))) {
      return;
    }
  }
  if (!sumBatch && batch > 65535) throw new Error(`matmul: batch ${batch} is larger than the tiled kernel's 65535`);
  ctx.gemmCounts.tiled++;
  ctx.rt.launch('gemm_tiled', [Math.ceil(n / 64), Math.ceil(m / 64), sumBatch ? 1 : batch], [256], 0, [
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

/** The matmul kernel; its arguments are checked in core (kernelChecks). */
export const matmulKernels = { matmul } satisfies KernelFamily<Ctx>;

/**
 * The GEMM on cuBLASLt, which takes operands of one dtype. A 16-bit operand against a float32
 * one (LoRA's bfloat16 activations against its float32 adapter weights, forward and backward)
 * runs in float32: the 16-bit operand is widened into a temporary (exactly), and a 16-bit output
 * of float32 operands is computed in a float32 temporary and rounded once, so the arithmetic is
 * the tiled kernel's, on cuBLASLt's GEMMs. Returns false when cuBLASLt cannot take the call
 * (then the tiled kernel does), e.g. a 16-bit output with gaps between its batch matrices.
 * spanA/spanB: elements of a and b the call reads.
 */
function ltMatmul(ctx: Ctx, call: GemmCall, spanA: number, spanB: number): boolean {
  const lt = ctx.lt!;
  if (CublasLt.supports(call)) {
    if (!lt.matmul(call)) return false;
    ctx.gemmCounts.cublasLt++;
    return true;
  }
  const wide = call.dtA === 'float32' || call.dtB === 'float32' || call.dtOut === 'float32';
  const spanOut = call.batch > 1 ? (call.batch - 1) * call.strideOut + call.m * call.n : call.m * call.n;
  if (!wide || (call.dtOut !== 'float32' && call.batch > 1 && call.strideOut !== call.m * call.n)) return false;
  const temps: Block[] = [];
  const widen = (ptr: number, dtype: DType, count: number): number => {
    if (dtype === 'float32') return ptr;
    const t = temp(ctx, count * 4);
    temps.push(t);
    convert(ctx, t.ptr, 'float32', ptr, dtype, count);
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
      const t = temp(ctx, spanOut * 4);
      temps.push(t);
      if (call.accumulate) convert(ctx, t.ptr, 'float32', call.out, call.dtOut, spanOut);
      promoted.out = t.ptr;
    }
    if (!lt.matmul(promoted)) return false;
    if (call.dtOut !== 'float32') convert(ctx, call.out, call.dtOut, promoted.out, 'float32', spanOut);
    ctx.gemmCounts.cublasLt++;
    return true;
  } finally {
    // Stream order: the blocks' next users run after the work enqueued here.
    for (const t of temps) ctx.rt.release(t);
  }
}

/**
 * One GEMM (batch 1) on kernels/matmul_skinny.cu when it is a 16-bit operand against a float32
 * one with a float32 output and a small side: a 16-bit a [m, k] times a float32 op(b) with n ≤ 64
 * (x · Aᵀ), or a float32 op(a) with m ≤ 64 times a 16-bit b [k, n] (dhᵀ · x). The second splits k
 * into chunks for enough blocks and adds their partial sums in order. False for any other call.
 */
function skinny(ctx: Ctx, c: GemmCall): boolean {
  if (!ctx.mixedKernels || c.dtOut !== 'float32') return false;
  const a16 = c.dtA !== 'float32';
  const b16 = c.dtB !== 'float32';
  const accumulate = c.accumulate ? 1 : 0;
  if (a16 && !b16 && !c.transA && c.n <= 64) {
    const nt = c.n <= 16 ? 16 : c.n <= 32 ? 32 : 64;
    const rows = nt === 16 ? 16 : 8; // 8 warps of 2 rows (n ≤ 16) or 1
    ctx.rt.launch(`gemm_skinny_n_${nt}` as KernelName, [Math.ceil(c.m / rows)], [256], 0, [
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
    let splits = Math.min(tiles, 65535, Math.max(1, Math.ceil((2 * ctx.rt.info.multiprocessors) / cols)));
    const chunk = Math.ceil(tiles / splits) * 32;
    splits = Math.ceil(c.k / chunk);
    const part = splits > 1 ? temp(ctx, splits * c.m * c.n * 4) : null;
    try {
      ctx.rt.launch(`gemm_skinny_m_${mt}` as KernelName, [cols, splits], [256], 0, [
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
        ctx.rt.launch('skinny_sum', [grid(ctx, c.m * c.n)], [THREADS], 0, [c.out, part.ptr, splits, c.m * c.n, c.alpha, accumulate]);
    } finally {
      // Stream order: the block's next user runs after the sum.
      if (part) ctx.rt.release(part);
    }
  } else {
    return false;
  }
  ctx.gemmCounts.skinny++;
  return true;
}
