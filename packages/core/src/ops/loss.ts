import { needsGrad, own, record, save } from '../autograd/tape.js';
import type { CrossEntropyParams } from '../backend.js';
import { type Tensor, tensor } from '../tensor.js';
import { affine } from './elementwise.js';
import { expand, reshape } from './shape.js';
import { alloc, backendOf, requireFloat, requireInt } from './util.js';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (PyTorch's default −100). */
  ignoreIndex?: number;
  /** 'mean' over non-ignored rows (default), 'sum', or 'none' (per-row losses, 0 where ignored). */
  reduction?: 'mean' | 'sum' | 'none';
  /** Number of non-ignored rows, needed for 'mean' when targets are already a device tensor. */
  count?: number;
}

/**
 * Softmax cross-entropy of logits [..., classes] against int32 class targets [...] (a tensor or
 * host integers). The softmax is never materialised in the forward pass.
 */
export function crossEntropy(logits: Tensor, targets: Tensor | ArrayLike<number>, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  requireFloat(op, logits);
  const ignoreIndex = opts.ignoreIndex ?? -100;
  const reduction = opts.reduction ?? 'mean';
  if (logits.rank < 1) throw new Error(`${op}: logits ${logits.describe()} need a class dimension`);
  const classes = logits.shape[logits.rank - 1]!;
  const rows = classes === 0 ? 0 : logits.size / classes;
  let count = opts.count;
  let t: Tensor;
  let ownsTargets = false;
  if (isTensorLike(targets)) {
    t = targets;
    requireInt(op, t, 'targets');
  } else {
    const host = Array.from(targets);
    if (host.length !== rows) throw new Error(`${op}: ${host.length} targets for ${rows} rows of logits ${logits.describe()}`);
    host.forEach((v, i) => {
      if (v !== ignoreIndex && (!Number.isInteger(v) || v < 0 || v >= classes)) {
        throw new Error(`${op}: target ${v} at row ${i} is outside [0, ${classes}) and is not ignoreIndex ${ignoreIndex}`);
      }
    });
    count ??= host.filter((v) => v !== ignoreIndex).length;
    t = tensor(host, logits.shape.slice(0, -1), { backend: logits.backend, dtype: 'int32' });
    ownsTargets = true;
  }
  const backend = backendOf(op, [logits, t]);
  if (t.size !== rows) throw new Error(`${op}: targets ${t.describe()} do not match the ${rows} rows of logits ${logits.describe()}`);
  if (reduction === 'mean' && count === undefined) {
    throw new Error(
      `${op}: reduction 'mean' with device targets needs opts.count (the number of non-ignored targets); or pass host targets`,
    );
  }
  const p: CrossEntropyParams = { rows, classes, ignoreIndex };
  const perRow = alloc(backend, logits.shape.slice(0, -1), 'float32', op);
  const lse = alloc(backend, [rows], 'float32', op);
  if (rows > 0) backend.crossEntropy(perRow.buffer(), lse.buffer(), logits.buffer(op), t.buffer(op), p);
  const grad = needsGrad([logits]);
  let out: Tensor = perRow;
  if (reduction !== 'none') {
    const s = sumRaw(perRow);
    out = reduction === 'mean' ? affineRaw(s, count! > 0 ? 1 / count! : 0) : s;
    if (out !== s) s.dispose();
  }
  if (grad) {
    const ls = save(logits);
    const ts = save(t);
    record(op, [logits], [out], [ls, ts, own(lse)], ([g]) => {
      let dRows: Tensor;
      if (reduction === 'none') dRows = g!.share();
      else {
        const g1 = reshape(g!, [1]);
        const e = expand(g1, [rows]);
        g1.dispose();
        dRows = reduction === 'mean' ? affine(e, count! > 0 ? 1 / count! : 0, 0) : e;
        if (dRows !== e) e.dispose();
      }
      const dLogits = alloc(backend, logits.shape, logits.dtype, op);
      if (rows > 0) backend.crossEntropyBackward(dLogits.buffer(), dRows.buffer(op), ls.buffer(op), ts.buffer(op), lse.buffer(op), p);
      dRows.dispose();
      return [dLogits];
    });
  } else {
    lse.dispose();
  }
  if (out !== perRow) perRow.dispose();
  if (ownsTargets) t.dispose();
  return out;
}

function isTensorLike(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && typeof (v as Tensor).describe === 'function' && 'dtype' in v;
}

function sumRaw(x: Tensor): Tensor {
  // Sum of the per-row losses, outside autograd: the loss node above differentiates the whole.
  const backend = x.backend;
  const y = alloc(backend, [], 'float32', 'crossEntropy');
  if (x.size === 0) backend.fill(y.buffer(), 0);
  else backend.reduce('sum', y.buffer(), x.buffer('crossEntropy'), 1, x.size, 1);
  return y;
}

function affineRaw(x: Tensor, alpha: number): Tensor {
  const y = alloc(x.backend, x.shape, x.dtype, 'crossEntropy');
  x.backend.affine(y.buffer(), x.buffer('crossEntropy'), alpha, 0);
  return y;
}
