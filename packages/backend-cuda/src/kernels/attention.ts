/**
 * Host side of kernels/attention.cu (float32 CUDA cores, any dtype, headDim ≤ 256) and
 * kernels/attention_tc.cu (tensor cores: one 16-bit dtype, headDim 64 or 128, sm_80+): which
 * variant runs, its grid and shared memory. Arguments are checked in core (kernelChecks); the
 * kernels' largest headDim is checked here.
 */
import type { AttentionParams, KernelFamily, KernelImpl } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE, type KernelName } from '../kernels.js';
import { type Ctx, temp } from './common.js';
import { fillRange } from './copy.js';

/** The size of k/v, and the feature-register variant (2, 4 or 8 per lane) for headDim (at most 256 on these kernels). */
function checkAttention(K: string, p: AttentionParams): { nk: number; nv: 2 | 4 | 8 } {
  if (p.headDim > 256) throw new Error(`${K}: headDim ${p.headDim} is larger than the 256 these kernels support`);
  const nv = p.headDim <= 64 ? 2 : p.headDim <= 128 ? 4 : 8;
  return { nk: p.batch * p.seqK * p.kvHeads * p.headDim, nv };
}

function attnShape(p: AttentionParams) {
  return { batch: p.batch, seqQ: p.seqQ, seqK: p.seqK, heads: p.heads, kvHeads: p.kvHeads, D: p.headDim, scale: p.scale, causal: p.causal };
}

const attention: KernelImpl<Ctx, 'attention'> = (ctx, out, lse, q, k, v, mask, p) => {
  const { nv } = checkAttention('attention', p);
  const o = out as CudaBuffer;
  const l = lse as CudaBuffer;
  const qb = q as CudaBuffer;
  const kb = k as CudaBuffer;
  const vb = v as CudaBuffer;
  const mb = mask as CudaBuffer | null;
  if (p.batch * p.heads * p.seqQ === 0) return;
  const D = p.headDim;
  const half = tcDtype(ctx, qb, kb, vb, D);
  if (half) {
    ctx.rt.launch(`attention_fwd_tc_${half}_${D}` as KernelName, [Math.ceil(p.seqQ / 64), p.heads, p.batch], [128], 0, [
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
  ctx.rt.launch(`attention_fwd_${nv}`, [Math.ceil(p.seqQ / 16), p.heads, p.batch], [128], smem, [
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
};

/** The tensor-core attention kernels' dtype name, when they apply: q, k and v of one 16-bit dtype, D = 64 or 128, sm_80+. */
function tcDtype(ctx: Ctx, q: CudaBuffer, k: CudaBuffer, v: CudaBuffer, D: number): 'bf16' | 'f16' | null {
  if (!ctx.tensorCores || k.dtype !== q.dtype || v.dtype !== q.dtype || (D !== 64 && D !== 128)) return null;
  return q.dtype === 'bfloat16' ? 'bf16' : q.dtype === 'float16' ? 'f16' : null;
}

const attentionBackward: KernelImpl<Ctx, 'attentionBackward'> = (ctx, dq, dk, dv, dOut, q, k, v, _out, lse, mask, p) => {
  // out is not read: delta_i comes from P and dP (see attention_tc.cu).
  const { nk, nv } = checkAttention('attentionBackward', p);
  const dqb = dq as CudaBuffer;
  const dkb = dk as CudaBuffer;
  const dvb = dv as CudaBuffer;
  const g = dOut as CudaBuffer;
  const qb = q as CudaBuffer;
  const kb = k as CudaBuffer;
  const vb = v as CudaBuffer;
  const l = lse as CudaBuffer;
  const mb = mask as CudaBuffer | null;
  const D = p.headDim;
  const rowsQ = p.batch * p.heads * p.seqQ;
  if (nk > 0 && p.seqQ === 0) {
    fillRange(ctx, dkb, 0, nk);
    fillRange(ctx, dvb, 0, nk);
  }
  if (rowsQ === 0) return;
  const delta = temp(ctx, rowsQ * 4);
  const shape = attnShape(p);
  const half = tcDtype(ctx, qb, kb, vb, D);
  if (half && g.dtype === qb.dtype) {
    // dq first: it sums delta_i = Σ_j P_ij·dP_ij, which the dk/dv kernel reads.
    ctx.rt.launch(`attention_bwd_dq_tc_${half}_${D}` as KernelName, [Math.ceil(p.seqQ / 64), p.heads, p.batch], [128], 0, [
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
      ctx.rt.launch(`attention_bwd_dkdv_tc_${half}_${D}` as KernelName, [Math.ceil(p.seqK / 64), p.kvHeads, p.batch], [128], smem, [
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
    ctx.rt.release(delta);
    return;
  }
  const ptrs = [g.ptr, DTYPE_CODE[g.dtype], qb.ptr, DTYPE_CODE[qb.dtype], kb.ptr, DTYPE_CODE[kb.dtype], vb.ptr, DTYPE_CODE[vb.dtype]];
  ctx.rt.launch(`attention_bwd_dq_${nv}`, [Math.ceil(p.seqQ / 16), p.heads, p.batch], [128], (32 * D + 64 * (D + 1)) * 4, [
    dqb.ptr,
    DTYPE_CODE[dqb.dtype],
    delta.ptr,
    ...ptrs,
    l.ptr,
    mb?.ptr ?? 0,
    shape,
  ]);
  if (p.seqK > 0) {
    ctx.rt.launch(`attention_bwd_dkdv_${nv}`, [Math.ceil(p.seqK / 16), p.kvHeads, p.batch], [128], (32 * D + 64 * (D + 1) + 64) * 4, [
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
  ctx.rt.release(delta);
};

/** The attention kernels; their arguments are checked in core (kernelChecks), headDim's limit here. */
export const attentionKernels = { attention, attentionBackward } satisfies KernelFamily<Ctx>;
