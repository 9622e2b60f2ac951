import { needsGrad, record, save } from '../autograd/tape.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, requireFloat, requireInt } from './util.js';

/** Rows of `weight` [rows, dim] picked by int32 `ids` of any shape: output [...ids.shape, dim]. */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  const op = 'embedding';
  const backend = backendOf(op, [weight, ids]);
  requireFloat(op, weight);
  requireInt(op, ids, 'ids');
  if (weight.rank !== 2) throw new Error(`${op}: weight ${weight.describe()} must be [rows, dim]`);
  const dim = weight.shape[1]!;
  const y = alloc(backend, [...ids.shape, dim], weight.dtype, op);
  if (y.size > 0) backend.embedding(y.buffer(), weight.buffer(op), ids.buffer(op), ids.size, dim);
  if (needsGrad([weight])) {
    const idsSaved = save(ids);
    record(op, [weight], [y], [idsSaved], ([g]) => {
      const dw = alloc(backend, weight.shape, g!.dtype === 'float32' ? 'float32' : weight.dtype, op);
      backend.embeddingBackward(dw.buffer(), g!.buffer(op), idsSaved.buffer(op), idsSaved.size, dim);
      return [dw];
    });
  }
  return y;
}

/**
 * Rows of a 2-D `x` [n, dim] at int32 `index` [m] → [m, dim]. With x = hidden states viewed as
 * [batch·seq, hidden] and index b·seq + (last real position of b), this is last-token pooling.
 */
export function gatherRows(x: Tensor, index: Tensor): Tensor {
  const op = 'gatherRows';
  const backend = backendOf(op, [x, index]);
  requireFloat(op, x);
  requireInt(op, index, 'index');
  if (x.rank !== 2 || index.rank !== 1) throw new Error(`${op}: x ${x.describe()} must be [n, dim] and index ${index.describe()} [m]`);
  const dim = x.shape[1]!;
  const y = alloc(backend, [index.size, dim], x.dtype, op);
  if (y.size > 0) backend.embedding(y.buffer(), x.buffer(op), index.buffer(op), index.size, dim);
  if (needsGrad([x])) {
    const idx = save(index);
    record(op, [x], [y], [idx], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      backend.embeddingBackward(dx.buffer(), g!.buffer(op), idx.buffer(op), idx.size, dim);
      return [dx];
    });
  }
  return y;
}
