import { needsGrad, own, record, save } from '../autograd/tape.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, requireFloat, requireShape, wanted } from './util.js';

function rowsOf(op: string, x: Tensor): { rows: number; dim: number } {
  requireFloat(op, x);
  if (x.rank === 0) throw new Error(`${op}: ${x.describe()} needs at least one dimension`);
  const dim = x.shape[x.rank - 1]!;
  return { rows: dim === 0 ? 0 : x.size / dim, dim };
}

/** Layer normalisation over the last dimension (biased variance, as PyTorch). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const op = 'layerNorm';
  const backend = backendOf(op, [x, weight, bias]);
  const { rows, dim } = rowsOf(op, x);
  if (weight) requireShape(op, weight, [dim], 'weight');
  if (bias) requireShape(op, bias, [dim], 'bias');
  const y = alloc(backend, x.shape, x.dtype, op);
  const mean = alloc(backend, [rows], 'float32', op);
  const rstd = alloc(backend, [rows], 'float32', op);
  const p = { rows, dim, eps };
  if (y.size > 0)
    backend.layerNorm(y.buffer(), mean.buffer(), rstd.buffer(), x.buffer(op), weight?.buffer(op) ?? null, bias?.buffer(op) ?? null, p);
  if (needsGrad([x, weight, bias])) {
    const xs = save(x);
    const ws = weight ? save(weight) : null;
    record(op, [x, weight, bias], [y], [xs, own(mean), own(rstd), ...(ws ? [ws] : [])], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      const dw = weight?.requiresGrad ? alloc(backend, [dim], 'float32', op) : null;
      const db = bias?.requiresGrad ? alloc(backend, [dim], 'float32', op) : null;
      if (dx.size > 0) {
        backend.layerNormBackward(
          dx.buffer(),
          dw?.buffer() ?? null,
          db?.buffer() ?? null,
          g!.buffer(op),
          xs.buffer(op),
          ws?.buffer(op) ?? null,
          mean.buffer(op),
          rstd.buffer(op),
          p,
        );
      }
      return [wanted(dx, x.requiresGrad), dw, db];
    });
  } else {
    mean.dispose();
    rstd.dispose();
  }
  return y;
}

/** RMS normalisation over the last dimension: x / √(mean(x²) + eps) · weight. */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps: number): Tensor {
  const op = 'rmsNorm';
  const backend = backendOf(op, [x, weight]);
  const { rows, dim } = rowsOf(op, x);
  if (weight) requireShape(op, weight, [dim], 'weight');
  const y = alloc(backend, x.shape, x.dtype, op);
  const rstd = alloc(backend, [rows], 'float32', op);
  const p = { rows, dim, eps };
  if (y.size > 0) backend.rmsNorm(y.buffer(), rstd.buffer(), x.buffer(op), weight?.buffer(op) ?? null, p);
  if (needsGrad([x, weight])) {
    const xs = save(x);
    const ws = weight ? save(weight) : null;
    record(op, [x, weight], [y], [xs, own(rstd), ...(ws ? [ws] : [])], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      const dw = weight?.requiresGrad ? alloc(backend, [dim], 'float32', op) : null;
      if (dx.size > 0)
        backend.rmsNormBackward(
          dx.buffer(),
          dw?.buffer() ?? null,
          g!.buffer(op),
          xs.buffer(op),
          ws?.buffer(op) ?? null,
          rstd.buffer(op),
          p,
        );
      return [wanted(dx, x.requiresGrad), dw];
    });
  } else {
    rstd.dispose();
  }
  return y;
}
