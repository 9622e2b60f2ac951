/**
 * Scaled dot-product attention on the sgemm engine. q is [batch, seqQ, heads, headDim]; k and v
 * are [batch, seqK, kvHeads, headDim]; head h reads kv head ⌊h / (heads / kvHeads)⌋. Query i sees
 * key j when the mask (int32 [batch, seqK], 0 = padding) marks j real and, if causal,
 * j ≤ i + (seqK − seqQ). A row that sees no key gets out = 0 and lse = −Infinity, and passes no
 * gradient.
 *
 * The GEMMs read each head's rows in place (a leading dimension of heads·headDim) and write out,
 * dq, dk and dv in place, so nothing is gathered or scattered. Queries go in blocks of
 * QUERY_BLOCK rows whose whole score block [rows, keys] is one GEMM, so the softmax needs no
 * running rescale; the softmax normalizes the probabilities, so that the second GEMM (P·V) is the
 * output itself. Scratch beyond the inputs and outputs is one score block (two in the backward),
 * in the row module's memory, reused across calls. A block spans the keys from the batch's first
 * to its last real key, cut at the causal diagonal of its last row; padding inside that span gets
 * a −∞ bias. Scores and products are float32, row sums float64; the row math is in
 * attention-rows.ts. The blocks do not depend on the thread count, nor does any sum's order.
 */
import type { AttentionParams, KernelFamily, KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { fillRaw, loadF32, outF32, storeF32 } from '../storage.js';
import { type AttentionRows, createAttentionRows, rowStride } from './attention-rows.js';

/**
 * Query rows per score block: few enough that causal blocks skip most of the masked triangle.
 * On the GPT-NeoX shape (seq 128, headDim 64) 48, 64 and 128 rows were no faster at 1 thread
 * (fewer, larger GEMM calls, but more of the masked triangle computed); and every product stays
 * at most 2¹⁸ multiply-adds there, the size below which OpenBLAS does not split a product across
 * threads (a split product has other bits than one computed by one thread).
 */
const QUERY_BLOCK = 32;

const rowsByContext = new WeakMap<object, AttentionRows>();

function rowKernels(ctx: CpuContext): AttentionRows {
  let rows = rowsByContext.get(ctx);
  if (rows === undefined) {
    rows = createAttentionRows();
    rowsByContext.set(ctx, rows);
  }
  return rows;
}

/** The keys of batch b that matter: [lo, hi) spans its first to its last real key (empty when all are padding). */
function keySpan(mk: Int32Array | null, b: number, seqK: number): { lo: number; hi: number } {
  if (mk === null) return { lo: 0, hi: seqK };
  const base = b * seqK;
  let lo = 0;
  while (lo < seqK && mk[base + lo] === 0) lo++;
  let hi = seqK;
  while (hi > lo && mk[base + hi - 1] === 0) hi--;
  return { lo, hi };
}

/**
 * The keys a query block [i0, i0 + rows) spans end at `end` (exclusive; ≤ lo when no row sees a
 * key); row r sees the first clamp(seen0 + r·step, 0, end − lo) of them.
 */
function blockKeys(p: AttentionParams, i0: number, rows: number, lo: number, hi: number): { end: number; seen0: number; step: number } {
  if (!p.causal) return { end: hi, seen0: hi - lo, step: 0 };
  const offset = p.seqK - p.seqQ;
  return { end: Math.min(hi, i0 + rows + offset), seen0: i0 + offset - lo + 1, step: 1 };
}

/** bias[c] = −∞ where key lo + c of batch b is padding, else 0; false when no key in [lo, hi) is. */
function fillBias(mk: Int32Array | null, b: number, seqK: number, lo: number, hi: number, bias: Float32Array): boolean {
  if (mk === null) return false;
  let any = false;
  for (let j = lo; j < hi; j++) {
    const pad = mk[b * seqK + j] === 0;
    bias[j - lo] = pad ? Number.NEGATIVE_INFINITY : 0;
    any ||= pad;
  }
  return any;
}

const attention: KernelImpl<CpuContext, 'attention'> = (ctx, out, lse, q, k, v, mask, p) => {
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D, scale } = p;
  const nq = batch * seqQ * heads * D;
  const nk = batch * seqK * kvHeads * D;
  const o = out as CpuBuffer;
  const lseOut = (lse as CpuBuffer).data as Float32Array;
  const qs = loadF32(q as CpuBuffer, 0, nq);
  const ks = loadF32(k as CpuBuffer, 0, nk);
  const vs = loadF32(v as CpuBuffer, 0, nk);
  const mk = mask === null ? null : ((mask as CpuBuffer).data as Int32Array);
  const ys = outF32(o, nq);
  // The output is zeroed in one pass and the products add to it: OpenBLAS's beta-0 path (C
  // overwritten: C is zeroed first, a column at a time) costs more than adding to C, up to 3 µs
  // for a 128 × 64 block at a leading dimension of 768. Rows that see no key stay 0.
  fillRaw(ys, 0);
  const group = heads / kvHeads;
  const bq = Math.min(QUERY_BLOCK, seqQ);
  const rk = rowKernels(ctx);
  rk.reserve(bq * rowStride(seqK), rowStride(seqK), bq);
  const gemm = ctx.sgemm;
  // Heads are read in place: row i of head h of batch b starts at ((b·seq + i)·nHeads + h)·D.
  const ldq = heads * D;
  const ldk = kvHeads * D;
  for (let b = 0; b < batch; b++) {
    const { lo, hi } = keySpan(mk, b, seqK);
    const biased = fillBias(mk, b, seqK, lo, hi, rk.bias);
    for (let g = 0; g < kvHeads; g++) {
      const k0 = ((b * seqK + lo) * kvHeads + g) * D;
      for (let h = g * group; h < (g + 1) * group; h++) {
        const q0 = (b * seqQ * heads + h) * D;
        const lseRow = (b * heads + h) * seqQ;
        for (let i0 = 0; i0 < seqQ; i0 += bq) {
          const rows = Math.min(bq, seqQ - i0);
          const { end, seen0, step } = blockKeys(p, i0, rows, lo, hi);
          const n = end - lo;
          const y0 = q0 + i0 * ldq;
          if (n <= 0) {
            lseOut.fill(Number.NEGATIVE_INFINITY, lseRow + i0, lseRow + i0 + rows);
            continue;
          }
          const ld = rowStride(n);
          gemm.sgemm({
            m: rows,
            n,
            k: D,
            a: qs,
            aOffset: y0,
            lda: ldq,
            transA: false,
            b: ks,
            bOffset: k0,
            ldb: ldk,
            transB: true,
            c: rk.s,
            cOffset: 0,
            ldc: ld,
            alpha: scale,
            accumulate: false,
          });
          rk.softmax(rows, n, ld, seen0, step, biased);
          // The probabilities are normalized, so the product is the output, written in place.
          gemm.sgemm({
            m: rows,
            n: D,
            k: n,
            a: rk.s,
            aOffset: 0,
            lda: ld,
            transA: false,
            b: vs,
            bOffset: k0,
            ldb: ldk,
            transB: false,
            c: ys,
            cOffset: y0,
            ldc: ldq,
            alpha: 1,
            accumulate: true,
          });
          const { max, sum } = rk;
          for (let r = 0; r < rows; r++) {
            if (max[r] === Number.NEGATIVE_INFINITY) {
              // Sees no key: its probabilities are 0, but 0·v is not 0 where v is not finite.
              lseOut[lseRow + i0 + r] = Number.NEGATIVE_INFINITY;
              ys.fill(0, y0 + r * ldq, y0 + r * ldq + D);
            } else {
              lseOut[lseRow + i0 + r] = max[r] + Math.log(sum[r]);
            }
          }
        }
      }
    }
  }
  storeF32(o, ys);
};

/**
 * Flash-attention style backward from the saved lse: P = exp(S − lse), dP = dO·Vᵀ,
 * D_i = Σ_j P_ij·dP_ij, dS = P·(dP − D_i); dq = scale·dS·K, dk = scale·dSᵀ·Q, dv = Pᵀ·dO, with dk
 * and dv summed over the query heads that share a kv head. D_i equals Σ dO_i·O_i in exact
 * arithmetic; it is computed from P and dP so that the rounding of a float16/bfloat16 `out`
 * does not leak into the gradients (amplified by large scores), so `out` is not read (core checks it).
 * Blocks and key spans are the forward's. dq, dk and dv are zeroed first, then every product adds
 * to them in place (dk and dv sum over the query blocks and the heads of a kv head).
 */
const attentionBackward: KernelImpl<CpuContext, 'attentionBackward'> = (ctx, dq, dk, dv, dOut, q, k, v, _out, lse, mask, p) => {
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D } = p;
  const nq = batch * seqQ * heads * D;
  const nk = batch * seqK * kvHeads * D;
  const rk = rowKernels(ctx);
  const bq = Math.min(QUERY_BLOCK, seqQ);
  rk.reserve(bq * rowStride(seqK), rowStride(seqK), bq);
  const call: BackwardCall = {
    ctx,
    p,
    rk,
    g: loadF32(dOut as CpuBuffer, 0, nq),
    qs: loadF32(q as CpuBuffer, 0, nq),
    ks: loadF32(k as CpuBuffer, 0, nk),
    vs: loadF32(v as CpuBuffer, 0, nk),
    ls: (lse as CpuBuffer).data as Float32Array,
    dqs: outF32(dq as CpuBuffer, nq),
    dks: outF32(dk as CpuBuffer, nk),
    dvs: outF32(dv as CpuBuffer, nk),
  };
  const mk = mask === null ? null : ((mask as CpuBuffer).data as Int32Array);
  const group = heads / kvHeads;
  // Zeroed in one pass each, then added to (see attention: OpenBLAS's beta 0 costs more).
  fillRaw(call.dqs, 0);
  fillRaw(call.dks, 0);
  fillRaw(call.dvs, 0);
  for (let b = 0; b < batch; b++) {
    const { lo, hi } = keySpan(mk, b, seqK);
    const biased = fillBias(mk, b, seqK, lo, hi, rk.bias);
    for (let kv = 0; kv < kvHeads; kv++) {
      for (let h = kv * group; h < (kv + 1) * group; h++) {
        for (let i0 = 0; i0 < seqQ; i0 += bq) backwardBlock(call, b, kv, h, i0, Math.min(bq, seqQ - i0), lo, hi, biased);
      }
    }
  }
  storeF32(dq as CpuBuffer, call.dqs);
  storeF32(dk as CpuBuffer, call.dks);
  storeF32(dv as CpuBuffer, call.dvs);
};

/** What every query block of one attentionBackward call reads and writes (float32 copies of the buffers). */
interface BackwardCall {
  ctx: CpuContext;
  p: AttentionParams;
  rk: AttentionRows;
  g: Float32Array;
  qs: Float32Array;
  ks: Float32Array;
  vs: Float32Array;
  ls: Float32Array;
  dqs: Float32Array;
  dks: Float32Array;
  dvs: Float32Array;
}

/**
 * The gradients of query rows [i0, i0 + rows) of head h (kv head kv) of batch b, added to dq of
 * those rows and to dk and dv of the block's keys [lo, end) (nothing where the block sees no key).
 * Heads are read and written in place (see attention).
 */
function backwardBlock(
  call: BackwardCall,
  b: number,
  kv: number,
  h: number,
  i0: number,
  rows: number,
  lo: number,
  hi: number,
  biased: boolean,
): void {
  const { p, rk, g, qs, ks, vs, dqs, dks, dvs } = call;
  const { seqQ, seqK, heads, kvHeads, headDim: D, scale } = p;
  const gemm = call.ctx.sgemm;
  const ldq = heads * D;
  const ldk = kvHeads * D;
  const q0 = (b * seqQ * heads + h) * D + i0 * ldq;
  const k0 = ((b * seqK + lo) * kvHeads + kv) * D;
  const { end, seen0, step } = blockKeys(p, i0, rows, lo, hi);
  const n = end - lo;
  if (n <= 0) return;
  const ld = rowStride(n);
  const { s: P, ds: dS } = rk;
  gemm.sgemm({
    m: rows,
    n,
    k: D,
    a: qs,
    aOffset: q0,
    lda: ldq,
    transA: false,
    b: ks,
    bOffset: k0,
    ldb: ldk,
    transB: true,
    c: P,
    cOffset: 0,
    ldc: ld,
    alpha: scale,
    accumulate: false,
  });
  gemm.sgemm({
    m: rows,
    n,
    k: D,
    a: g,
    aOffset: q0,
    lda: ldq,
    transA: false,
    b: vs,
    bOffset: k0,
    ldb: ldk,
    transB: true,
    c: dS,
    cOffset: 0,
    ldc: ld,
    alpha: 1,
    accumulate: false,
  });
  const lseRow = (b * heads + h) * seqQ + i0;
  for (let r = 0; r < rows; r++) rk.lse[r] = call.ls[lseRow + r];
  rk.grad(rows, n, ld, seen0, step, biased);
  gemm.sgemm({
    m: rows,
    n: D,
    k: n,
    a: dS,
    aOffset: 0,
    lda: ld,
    transA: false,
    b: ks,
    bOffset: k0,
    ldb: ldk,
    transB: false,
    c: dqs,
    cOffset: q0,
    ldc: ldq,
    alpha: scale,
    accumulate: true,
  });
  gemm.sgemm({
    m: n,
    n: D,
    k: rows,
    a: dS,
    aOffset: 0,
    lda: ld,
    transA: true,
    b: qs,
    bOffset: q0,
    ldb: ldq,
    transB: false,
    c: dks,
    cOffset: k0,
    ldc: ldk,
    alpha: scale,
    accumulate: true,
  });
  gemm.sgemm({
    m: n,
    n: D,
    k: rows,
    a: P,
    aOffset: 0,
    lda: ld,
    transA: true,
    b: g,
    bOffset: q0,
    ldb: ldq,
    transB: false,
    c: dvs,
    cOffset: k0,
    ldc: ldk,
    alpha: 1,
    accumulate: true,
  });
}

/** The attention kernels; their arguments are checked in core (kernelChecks). */
export const attentionKernels = { attention, attentionBackward } satisfies KernelFamily<CpuContext>;
