/**
 * Scaled dot-product attention, one (batch, head, query) row at a time, in double precision.
 * q is [batch, seqQ, heads, headDim]; k and v are [batch, seqK, kvHeads, headDim]; head h reads
 * kv head ⌊h / (heads / kvHeads)⌋. Query i sees key j when the mask (int32 [batch, seqK], 0 =
 * padding) marks j real and, if causal, j ≤ i + (seqK − seqQ). A row that sees no key gets
 * out = 0 and lse = −Infinity, and passes no gradient.
 */
import type { AttentionParams, DeviceBuffer } from '@peft/core';
import { arg, type CpuContext, counts, finite } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

function checkParams(K: string, p: AttentionParams): void {
  counts(K, { batch: p.batch, seqQ: p.seqQ, seqK: p.seqK, heads: p.heads, kvHeads: p.kvHeads, headDim: p.headDim });
  finite(K, 'scale', p.scale);
  if (p.kvHeads === 0 ? p.heads !== 0 : p.heads % p.kvHeads !== 0) {
    throw new Error(`${K}: heads ${p.heads} must be a multiple of kvHeads ${p.kvHeads}`);
  }
}

/** Last key index query i may see under the causal rule (seqK − 1 when not causal). */
function lastKey(p: AttentionParams, i: number): number {
  return p.causal ? Math.min(p.seqK - 1, i + p.seqK - p.seqQ) : p.seqK - 1;
}

export function attention(
  ctx: CpuContext,
  out: DeviceBuffer,
  lse: DeviceBuffer,
  q: DeviceBuffer,
  k: DeviceBuffer,
  v: DeviceBuffer,
  mask: DeviceBuffer | null,
  p: AttentionParams,
): void {
  const K = 'attention';
  checkParams(K, p);
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D, scale } = p;
  const nq = batch * seqQ * heads * D;
  const nk = batch * seqK * kvHeads * D;
  const o = arg(ctx, K, 'out', out, nq, 'float');
  const lseOut = arg(ctx, K, 'lse', lse, batch * heads * seqQ, 'float32').data as Float32Array;
  const qs = loadF32(arg(ctx, K, 'q', q, nq, 'float'), 0, nq);
  const ks = loadF32(arg(ctx, K, 'k', k, nk, 'float'), 0, nk);
  const vs = loadF32(arg(ctx, K, 'v', v, nk, 'float'), 0, nk);
  const mk = mask === null ? null : (arg(ctx, K, 'mask', mask, batch * seqK, 'int32').data as Int32Array);
  if (o === q || o === k || o === v) throw new Error('attention: out must not be the same buffer as q, k or v');
  const ys = outF32(o, nq);
  const group = heads / kvHeads;
  const scores = new Float64Array(seqK);
  const acc = new Float64Array(D);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < seqQ; i++) {
        const qo = ((b * seqQ + i) * heads + h) * D;
        const last = lastKey(p, i);
        let max = Number.NEGATIVE_INFINITY;
        for (let j = 0; j <= last; j++) {
          if (mk !== null && mk[b * seqK + j] === 0) {
            scores[j] = Number.NEGATIVE_INFINITY;
            continue;
          }
          const ko = ((b * seqK + j) * kvHeads + kh) * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += qs[qo + d] * ks[ko + d];
          const s = scale * dot;
          scores[j] = s;
          if (s > max) max = s;
        }
        const lseAt = (b * heads + h) * seqQ + i;
        if (max === Number.NEGATIVE_INFINITY) {
          ys.fill(0, qo, qo + D);
          lseOut[lseAt] = Number.NEGATIVE_INFINITY;
          continue;
        }
        acc.fill(0);
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          const e = Math.exp(scores[j] - max);
          if (e === 0) continue;
          sum += e;
          const vo = ((b * seqK + j) * kvHeads + kh) * D;
          for (let d = 0; d < D; d++) acc[d] += e * vs[vo + d];
        }
        for (let d = 0; d < D; d++) ys[qo + d] = acc[d] / sum;
        lseOut[lseAt] = max + Math.log(sum);
      }
    }
  }
  storeF32(o, ys);
}

/**
 * Flash-attention style backward from the saved lse: P = exp(S − lse), dP = dO·Vᵀ,
 * D_i = Σ_j P_ij·dP_ij, dS = P·(dP − D_i); dq = scale·dS·K, dk = scale·dSᵀ·Q, dv = Pᵀ·dO, with dk
 * and dv summed over the query heads that share a kv head. D_i equals Σ dO_i·O_i in exact
 * arithmetic; it is computed from P and dP so that the rounding of a float16/bfloat16 `out`
 * does not leak into the gradients (amplified by large scores), so `out` is only validated.
 */
export function attentionBackward(
  ctx: CpuContext,
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
  const K = 'attentionBackward';
  checkParams(K, p);
  const { batch, seqQ, seqK, heads, kvHeads, headDim: D, scale } = p;
  const nq = batch * seqQ * heads * D;
  const nk = batch * seqK * kvHeads * D;
  const dqb = arg(ctx, K, 'dq', dq, nq, 'float');
  const dkb = arg(ctx, K, 'dk', dk, nk, 'float');
  const dvb = arg(ctx, K, 'dv', dv, nk, 'float');
  const g = loadF32(arg(ctx, K, 'dOut', dOut, nq, 'float'), 0, nq);
  const qs = loadF32(arg(ctx, K, 'q', q, nq, 'float'), 0, nq);
  const ks = loadF32(arg(ctx, K, 'k', k, nk, 'float'), 0, nk);
  const vs = loadF32(arg(ctx, K, 'v', v, nk, 'float'), 0, nk);
  arg(ctx, K, 'out', out, nq, 'float'); // validated only: see above
  const ls = arg(ctx, K, 'lse', lse, batch * heads * seqQ, 'float32').data as Float32Array;
  const mk = mask === null ? null : (arg(ctx, K, 'mask', mask, batch * seqK, 'int32').data as Int32Array);
  for (const [name, buf] of [
    ['dq', dqb],
    ['dk', dkb],
    ['dv', dvb],
  ] as const) {
    if (buf === dOut || buf === q || buf === k || buf === v || buf === out) {
      throw new Error(`attentionBackward: ${name} must not be the same buffer as an input`);
    }
  }
  const dqs = new Float32Array(nq);
  const dks = new Float64Array(nk);
  const dvs = new Float64Array(nk);
  const dqRow = new Float64Array(D);
  const P = new Float64Array(seqK);
  const dP = new Float64Array(seqK);
  const group = heads / kvHeads;
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < seqQ; i++) {
        const l = ls[(b * heads + h) * seqQ + i];
        if (l === Number.NEGATIVE_INFINITY) continue;
        const qo = ((b * seqQ + i) * heads + h) * D;
        const last = lastKey(p, i);
        let Di = 0;
        for (let j = 0; j <= last; j++) {
          if (mk !== null && mk[b * seqK + j] === 0) {
            P[j] = 0;
            continue;
          }
          const ko = ((b * seqK + j) * kvHeads + kh) * D;
          let dot = 0;
          let dp = 0;
          for (let d = 0; d < D; d++) {
            dot += qs[qo + d] * ks[ko + d];
            dp += g[qo + d] * vs[ko + d];
          }
          P[j] = Math.exp(scale * dot - l);
          dP[j] = dp;
          Di += P[j] * dp;
        }
        dqRow.fill(0);
        for (let j = 0; j <= last; j++) {
          const pj = P[j];
          if (pj === 0) continue;
          const ko = ((b * seqK + j) * kvHeads + kh) * D;
          const dS = scale * pj * (dP[j] - Di);
          for (let d = 0; d < D; d++) {
            dqRow[d] += dS * ks[ko + d];
            dks[ko + d] += dS * qs[qo + d];
            dvs[ko + d] += pj * g[qo + d];
          }
        }
        for (let d = 0; d < D; d++) dqs[qo + d] = dqRow[d];
      }
    }
  }
  storeF32(dqb, dqs);
  storeF32(dkb, new Float32Array(dks));
  storeF32(dvb, new Float32Array(dvs));
}
