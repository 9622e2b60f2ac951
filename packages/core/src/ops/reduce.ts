import { needsGrad, record } from '../autograd/tape.js';
import type { ReduceOp } from '../backend.js';
import { shapeSize, type Tensor } from '../tensor.js';
import { affine } from './elementwise.js';
import { expand, reshape } from './shape.js';
import { alloc, axisOf, backendOf, requireFloat } from './util.js';

function normAxes(op: string, x: Tensor, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const out = [...new Set(list.map((a) => axisOf(op, a, x.rank)))].sort((a, b) => a - b);
  return out;
}

/** Reduces over `axes` one contiguous run at a time (the kernel reduces the middle of [outer, reduce, inner]). */
function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  const backend = backendOf(op, [x]);
  let current = x.share();
  const runs: [number, number][] = [];
  for (const a of axes) {
    const last = runs[runs.length - 1];
    if (last && last[1] === a - 1) last[1] = a;
    else runs.push([a, a]);
  }
  // Work from the last run so earlier axis numbers stay valid.
  for (let r = runs.length - 1; r >= 0; r--) {
    const [lo, hi] = runs[r]!;
    const outer = shapeSize(current.shape.slice(0, lo));
    const red = shapeSize(current.shape.slice(lo, hi + 1));
    const inner = shapeSize(current.shape.slice(hi + 1));
    const shape = [...current.shape.slice(0, lo), ...current.shape.slice(hi + 1)];
    const next = alloc(backend, shape, current.dtype, op);
    if (next.size > 0) {
      if (red === 0) backend.fill(next.buffer(), op === 'sum' ? 0 : Number.NEGATIVE_INFINITY);
      else backend.reduce(op, next.buffer(), current.buffer(op), outer, red, inner);
    }
    current.dispose();
    current = next;
  }
  return current;
}

function keptShape(x: Tensor, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Sum over `axes` (all when omitted). */
export function sum(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  requireFloat('sum', x);
  const ax = normAxes('sum', x, axes);
  const raw = reduceRaw('sum', x, ax);
  const y = keepDims ? reshape(raw, keptShape(x, ax)) : raw;
  if (keepDims) raw.dispose();
  if (needsGrad([x])) {
    record('sum', [x], [y], [], ([g]) => {
      const r = reshape(g!, keptShape(x, ax));
      const dx = expand(r, x.shape);
      r.dispose();
      return [dx];
    });
  }
  return y;
}

/** Mean over `axes` (all when omitted). */
export function mean(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  const ax = normAxes('mean', x, axes);
  const count = ax.reduce((n, a) => n * x.shape[a]!, 1);
  const s = sum(x, ax, keepDims);
  const y = affine(s, 1 / count, 0);
  s.dispose();
  return y;
}

/** Maximum over `axes` (no gradient). */
export function max(x: Tensor, axes?: number | readonly number[], keepDims = false): Tensor {
  if (needsGrad([x])) throw new Error('max: has no gradient; call it inside noGrad()');
  const ax = normAxes('max', x, axes);
  const raw = reduceRaw('max', x, ax);
  if (!keepDims) return raw;
  const y = reshape(raw, keptShape(x, ax));
  raw.dispose();
  return y;
}

/** int32 index of the largest value along the last axis (first on ties). */
export function argmax(x: Tensor): Tensor {
  const op = 'argmax';
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  if (x.rank === 0) throw new Error(`${op}: ${x.describe()} has no axis`);
  const cols = x.shape[x.rank - 1]!;
  const rows = x.size / Math.max(cols, 1);
  if (cols === 0) throw new Error(`${op}: ${x.describe()} has an empty last axis`);
  const y = alloc(backend, x.shape.slice(0, -1), 'int32', op);
  if (y.size > 0) backend.argmax(y.buffer(), x.buffer(op), rows, cols);
  return y;
}
