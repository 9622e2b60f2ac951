/**
 * Batched GEMM on the sgemm engine. out[b] = alpha · op(a[b]) · op(b[b]) (+ out[b]) with matrix b
 * of each operand at `b · stride` (stride 0 reuses one matrix for the whole batch).
 *
 * strideOut = 0 with batch > 1 sums the batch into one matrix: out = alpha · Σ_b op(a[b]) · op(b[b])
 * (+ out when accumulate), which is the backward of a broadcast operand.
 *
 * float16 / bfloat16 operands: small ones are decoded whole once per call; a large one (a model's
 * weight) is decoded a panel of its stored rows at a time into a reused float32 scratch, and each
 * panel is one sgemm call (leading dimensions address the panel's part of the other operand and
 * of C), so no full float32 copy of it ever exists. Accumulation stays float32 throughout.
 */
import { type DeviceBuffer, type KernelFamily, type MatmulParams, matmulSpan as span } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import type { SgemmArgs } from '../gemm/index.js';
import { decodeTable, loadF32, storeF32 } from '../storage.js';

/** Where 16-bit operands switch from a whole decode to panels, and how large a panel is (elements). */
export const matmulBlocking = {
  /** A 16-bit operand spanning at most this many elements is decoded whole (4 MiB of float32). */
  decodeWholeUpTo: 1 << 20,
  /** A panel holds about this many elements (a multiple of 16 rows, at least 16): 256 rows of 4096. */
  panelElements: 1 << 20,
};

/** Its arguments are checked in core (kernelChecks). */
function matmul(ctx: CpuContext, out: DeviceBuffer, a: DeviceBuffer, b: DeviceBuffer, p: MatmulParams): void {
  const { batch, m, n, k, strideA, strideB, strideOut, alpha, accumulate, transA, transB } = p;
  const ab = a as CpuBuffer;
  const bb = b as CpuBuffer;
  const ob = out as CpuBuffer;
  if (batch === 0 || m === 0 || n === 0) return;

  const outLen = span(batch, strideOut, m * n);
  const c = ob.dtype === 'float32' ? (ob.data as Float32Array) : accumulate ? loadF32(ob, 0, outLen) : new Float32Array(outLen);
  if (k === 0) {
    if (!accumulate) for (let i = 0; i < batch; i++) c.fill(0, i * strideOut, i * strideOut + m * n);
  } else {
    const av = wholeData(ab, span(batch, strideA, m * k));
    const bv = wholeData(bb, span(batch, strideB, k * n));
    for (let i = 0; i < batch; i++) {
      const args: SgemmArgs = {
        m,
        n,
        k,
        a: av ?? EMPTY,
        aOffset: i * strideA,
        transA,
        b: bv ?? EMPTY,
        bOffset: i * strideB,
        transB,
        c,
        cOffset: i * strideOut,
        alpha,
        accumulate: accumulate || (strideOut === 0 && i > 0),
      };
      if (av && bv) ctx.sgemm.sgemm(args);
      else panels(ctx, args, av ? null : ab, bv ? null : bb);
    }
  }
  if (ob.dtype !== 'float32') storeF32(ob, c);
}

const EMPTY = new Float32Array(0);

export const matmulKernels = { matmul } satisfies KernelFamily<CpuContext>;

/**
 * The float32 values of an operand when it can be had whole: the buffer's own array (float32),
 * or a decoded copy of a small 16-bit operand; null for a large 16-bit one (decoded by panels).
 */
function wholeData(buf: CpuBuffer, n: number): Float32Array | null {
  if (buf.dtype === 'float32') return buf.data as Float32Array;
  return n <= matmulBlocking.decodeWholeUpTo ? loadF32(buf, 0, n) : null;
}

/** The panels' float32 scratch, kept across calls (kernels run one at a time), and its bits. */
let scratch = new Float32Array(0);
let scratchBits = new Uint32Array(0);

function scratchOf(n: number): Float32Array {
  if (scratch.length < n) {
    scratch = new Float32Array(n);
    scratchBits = new Uint32Array(scratch.buffer);
  }
  return scratch;
}

/** Decodes a rows × cols block of 16-bit `src` (rows `ld` apart, from `start`) into dst[d0…], packed. */
function decodeBlock(src: CpuBuffer, start: number, rows: number, cols: number, ld: number, dst: Float32Array, d0: number): void {
  const bits = src.data as Uint16Array;
  if (src.dtype === 'bfloat16') {
    // bfloat16 is the high half of a float32.
    const out = dst === scratch ? scratchBits : new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
    for (let r = 0; r < rows; r++) {
      const s = start + r * ld;
      const d = d0 + r * cols;
      for (let j = 0; j < cols; j++) out[d + j] = bits[s + j]! << 16;
    }
    return;
  }
  const table = decodeTable(src.dtype as 'float16');
  for (let r = 0; r < rows; r++) {
    const s = start + r * ld;
    const d = d0 + r * cols;
    for (let j = 0; j < cols; j++) dst[d + j] = table[bits[s + j]!]!;
  }
}

type Dim = 'm' | 'n' | 'k';

/**
 * One batch matrix with a large 16-bit `a` and/or `b` (the other one's float32 values are in
 * `args`). Blocks one of m, n, k so that each 16-bit operand is decoded exactly once, panel by
 * panel, along its stored rows where it is the only one: A [m, k] → row blocks of C; Bᵀ stored
 * [n, k] → column blocks of C (disjoint, written once); Aᵀ stored [k, m], B [k, n], or both
 * operands 16-bit → blocks of k, accumulated into C in float32.
 */
function panels(ctx: CpuContext, args: SgemmArgs, a16: CpuBuffer | null, b16: CpuBuffer | null): void {
  const { m, n, k, transA, transB } = args;
  const dim: Dim = a16 && b16 ? 'k' : a16 ? (transA ? 'k' : 'm') : transB ? 'n' : 'k';
  const total = dim === 'm' ? m : dim === 'n' ? n : k;
  // Elements of the decoded panels per unit of the blocked dimension.
  const aWidth = a16 ? (dim === 'm' ? k : m) : 0;
  const bWidth = b16 ? (dim === 'n' ? k : n) : 0;
  const step = Math.min(total, Math.max(16, Math.floor(matmulBlocking.panelElements / (aWidth + bWidth) / 16) * 16));
  const buf = scratchOf(step * (aWidth + bWidth));
  const bBase = step * aWidth;

  // Stored shapes, packed: A [m, k] or [k, m]; B [k, n] or [n, k].
  const lda = transA ? m : k;
  const ldb = transB ? k : n;
  for (let s0 = 0; s0 < total; s0 += step) {
    const len = Math.min(step, total - s0);
    const call: SgemmArgs = { ...args };
    if (dim === 'm') {
      call.m = len;
      call.cOffset = args.cOffset + s0 * n;
      call.ldc = n;
    } else if (dim === 'n') {
      call.n = len;
      call.cOffset = args.cOffset + s0;
      call.ldc = n;
    } else {
      call.k = len;
      call.accumulate = args.accumulate || s0 > 0;
    }
    // op(A) restricted to the block: rows of the stored A when the block runs along them, else columns.
    if (dim !== 'n') {
      const alongRows = (dim === 'm') !== transA;
      const [rows, cols, start] = alongRows ? [len, lda, s0 * lda] : [transA ? k : m, len, s0];
      if (a16) {
        decodeBlock(a16, args.aOffset + start, rows, cols, lda, buf, 0);
        Object.assign(call, { a: buf, aOffset: 0, lda: cols });
      } else {
        Object.assign(call, { aOffset: args.aOffset + start, lda });
      }
    }
    if (dim !== 'm') {
      const alongRows = (dim === 'n') === transB;
      const [rows, cols, start] = alongRows ? [len, ldb, s0 * ldb] : [transB ? n : k, len, s0];
      if (b16) {
        decodeBlock(b16, args.bOffset + start, rows, cols, ldb, buf, bBase);
        Object.assign(call, { b: buf, bOffset: bBase, ldb: cols });
      } else {
        Object.assign(call, { bOffset: args.bOffset + start, ldb });
      }
    }
    ctx.sgemm.sgemm(call);
  }
}
