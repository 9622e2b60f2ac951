/** The oracle's attention, from the explicit score matrix; its backward through the explicit softmax Jacobian. */
import type { AttentionParams } from '../../backend.js';
import type { Values } from './views.js';

interface AttentionRow {
  /** Keys this query sees. */
  keys: number[];
  /** Softmax probabilities over `keys`. */
  probs: number[];
  lse: number;
}

function attentionRow(q: Values, k: Values, mask: Values | null, p: AttentionParams, b: number, h: number, i: number): AttentionRow {
  const { seqQ, seqK, heads, kvHeads, headDim, scale, causal } = p;
  const kvh = Math.floor(h / (heads / kvHeads));
  const keys: number[] = [];
  const scores: number[] = [];
  for (let j = 0; j < seqK; j++) {
    if (causal && j > i + seqK - seqQ) continue;
    if (mask && mask[b * seqK + j] === 0) continue;
    let s = 0;
    for (let d = 0; d < headDim; d++)
      s += q[((b * seqQ + i) * heads + h) * headDim + d]! * k[((b * seqK + j) * kvHeads + kvh) * headDim + d]!;
    keys.push(j);
    scores.push(s * scale);
  }
  if (keys.length === 0) return { keys, probs: [], lse: Number.NEGATIVE_INFINITY };
  const max = Math.max(...scores);
  let z = 0;
  for (const s of scores) z += Math.exp(s - max);
  const lse = max + Math.log(z);
  return { keys, probs: scores.map((s) => Math.exp(s - lse)), lse };
}

/** Explicit score matrix per (batch, head): softmax(scale·q·kᵀ) over the keys a query sees, times v. */
export function attention(
  q: Values,
  k: Values,
  v: Values,
  mask: Values | null,
  p: AttentionParams,
): { out: Float64Array; lse: Float64Array } {
  const { batch, seqQ, seqK, heads, kvHeads, headDim } = p;
  const out = new Float64Array(batch * seqQ * heads * headDim);
  const lse = new Float64Array(batch * heads * seqQ);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / (heads / kvHeads));
      for (let i = 0; i < seqQ; i++) {
        const row = attentionRow(q, k, mask, p, b, h, i);
        lse[(b * heads + h) * seqQ + i] = row.lse;
        row.keys.forEach((j, t) => {
          for (let d = 0; d < headDim; d++) {
            const o = ((b * seqQ + i) * heads + h) * headDim + d;
            out[o] = out[o]! + row.probs[t]! * v[((b * seqK + j) * kvHeads + kvh) * headDim + d]!;
          }
        });
      }
    }
  }
  return { out, lse };
}

/**
 * Backward through the explicit softmax Jacobian ∂P_l/∂S_j = P_l(δ_lj − P_j), with P recomputed
 * from q and k (the saved out and lse are not used).
 */
export function attentionBackward(
  dOut: Values,
  q: Values,
  k: Values,
  v: Values,
  mask: Values | null,
  p: AttentionParams,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { batch, seqQ, seqK, heads, kvHeads, headDim, scale } = p;
  const dq = new Float64Array(q.length);
  const dk = new Float64Array(k.length);
  const dv = new Float64Array(v.length);
  for (let b = 0; b < batch; b++) {
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / (heads / kvHeads));
      for (let i = 0; i < seqQ; i++) {
        const row = attentionRow(q, k, mask, p, b, h, i);
        const keys = row.keys;
        const probs = Float64Array.from(row.probs);
        const qo = ((b * seqQ + i) * heads + h) * headDim;
        const ko = (j: number) => ((b * seqK + j) * kvHeads + kvh) * headDim;
        const dP = Float64Array.from(keys, (j) => {
          let s = 0;
          for (let d = 0; d < headDim; d++) s += dOut[qo + d]! * v[ko(j) + d]!;
          return s;
        });
        for (let t = 0; t < keys.length; t++) {
          const pt = probs[t]!;
          let dS = 0;
          for (let l = 0; l < keys.length; l++) dS += dP[l]! * probs[l]! * ((l === t ? 1 : 0) - pt);
          const kj = ko(keys[t]!);
          for (let d = 0; d < headDim; d++) {
            dq[qo + d] = dq[qo + d]! + scale * dS * k[kj + d]!;
            dk[kj + d] = dk[kj + d]! + scale * dS * q[qo + d]!;
            dv[kj + d] = dv[kj + d]! + pt * dOut[qo + d]!;
          }
        }
      }
    }
  }
  return { dq, dk, dv };
}
