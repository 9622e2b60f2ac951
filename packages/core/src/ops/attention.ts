import { needsGrad, own, record, save } from '../autograd/tape.js';
import type { AttentionParams } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, requireFloat, requireInt, requireShape, wanted } from './util.js';

export interface AttentionOptions {
  causal?: boolean;
  /** Default 1/√headDim. */
  scale?: number;
}

/**
 * Scaled dot-product attention. q [batch, seqQ, heads, headDim], k and v [batch, seqK, kvHeads,
 * headDim] (grouped-query when kvHeads < heads), key padding mask int32 [batch, seqK] (1 real,
 * 0 padding) or null. Returns [batch, seqQ, heads, headDim].
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, opts: AttentionOptions = {}): Tensor {
  const op = 'attention';
  const backend = backendOf(op, [q, k, v, mask]);
  for (const t of [q, k, v]) {
    requireFloat(op, t);
    if (t.rank !== 4) throw new Error(`${op}: ${t.describe()} must be [batch, seq, heads, headDim]`);
  }
  const [batch, seqQ, heads, headDim] = q.shape as [number, number, number, number];
  const [, seqK, kvHeads] = k.shape as [number, number, number, number];
  requireShape(op, k, [batch, seqK, kvHeads, headDim], 'k');
  requireShape(op, v, [batch, seqK, kvHeads, headDim], 'v');
  if (kvHeads === 0 || heads % kvHeads !== 0)
    throw new Error(`${op}: ${heads} query heads are not a multiple of ${kvHeads} key/value heads`);
  if (mask) {
    requireInt(op, mask, 'mask');
    requireShape(op, mask, [batch, seqK], 'mask');
  }
  const p: AttentionParams = {
    batch,
    seqQ,
    seqK,
    heads,
    kvHeads,
    headDim,
    scale: opts.scale ?? 1 / Math.sqrt(headDim),
    causal: opts.causal ?? true,
  };
  const dtype = q.dtype === k.dtype && k.dtype === v.dtype ? q.dtype : 'float32';
  const y = alloc(backend, q.shape, dtype, op);
  const lse = alloc(backend, [batch, heads, seqQ], 'float32', op);
  if (y.size > 0) backend.attention(y.buffer(), lse.buffer(), q.buffer(op), k.buffer(op), v.buffer(op), mask?.buffer(op) ?? null, p);
  if (needsGrad([q, k, v])) {
    const [qs, ks, vs, ys] = [save(q), save(k), save(v), save(y)];
    const ms = mask ? save(mask) : null;
    record(op, [q, k, v], [y], [qs, ks, vs, ys, own(lse), ...(ms ? [ms] : [])], ([g]) => {
      const dq = alloc(backend, q.shape, q.dtype, op);
      const dk = alloc(backend, k.shape, k.dtype, op);
      const dv = alloc(backend, v.shape, v.dtype, op);
      if (y.size > 0) {
        backend.attentionBackward(
          dq.buffer(),
          dk.buffer(),
          dv.buffer(),
          g!.buffer(op),
          qs.buffer(op),
          ks.buffer(op),
          vs.buffer(op),
          ys.buffer(op),
          lse.buffer(op),
          ms?.buffer(op) ?? null,
          p,
        );
      } else {
        for (const t of [dq, dk, dv]) if (t.size > 0) backend.fill(t.buffer(), 0);
      }
      return [wanted(dq, q.requiresGrad), wanted(dk, k.requiresGrad), wanted(dv, v.requiresGrad)];
    });
  } else {
    lse.dispose();
  }
  return y;
}
