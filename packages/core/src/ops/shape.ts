import { needsGrad, record } from '../autograd/tape.js';
import type { DType } from '../dtype.js';
import { formatShape, shapeSize, type Tensor } from '../tensor.js';
import { alloc, axisOf, backendOf, broadcastView, contiguousView, stridesOf } from './util.js';

/** Resolves one −1 in `shape` against `size`. */
function resolveShape(op: string, x: Tensor, shape: readonly number[]): number[] {
  const out = [...shape];
  const unknown = out.indexOf(-1);
  if (unknown !== out.lastIndexOf(-1)) throw new Error(`${op}: shape ${formatShape(shape)} has more than one -1`);
  if (unknown >= 0) {
    const known = shapeSize(out.filter((_, i) => i !== unknown));
    if (known === 0 || x.size % known !== 0) throw new Error(`${op}: cannot reshape ${x.describe()} to ${formatShape(shape)}`);
    out[unknown] = x.size / known;
  }
  if (shapeSize(out) !== x.size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${op}: cannot reshape ${x.describe()} (${x.size} elements) to ${formatShape(shape)}`);
  }
  return out;
}

/** The same elements with another shape; shares memory with `x` (no copy). One dimension may be −1. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const target = resolveShape('reshape', x, shape);
  const y = x.share(target);
  if (needsGrad([x])) record('reshape', [x], [y], [], ([g]) => [reshape(g!, x.shape)]);
  return y;
}

/** Reorders dimensions: y has shape [x.shape[dims[0]], …] (a copy). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  const op = 'permute';
  const backend = backendOf(op, [x]);
  if (dims.length !== x.rank || [...dims].sort((a, b) => a - b).some((d, i) => d !== i)) {
    throw new Error(`${op}: dims [${dims.join(', ')}] are not a permutation of 0..${x.rank - 1} for ${x.describe()}`);
  }
  const strides = stridesOf(x.shape);
  const shape = dims.map((d) => x.shape[d]!);
  const y = alloc(backend, shape, x.dtype, op);
  if (y.size > 0) backend.copy(y.buffer(), x.buffer(op), { shape, strides: dims.map((d) => strides[d]!), offset: 0 });
  if (needsGrad([x])) {
    const inverse = new Array<number>(dims.length);
    dims.forEach((d, i) => {
      inverse[d] = i;
    });
    record(op, [x], [y], [], ([g]) => [permute(g!, inverse)]);
  }
  return y;
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const dims = x.shape.map((_, i) => i);
  const i = axisOf('transpose', a, x.rank);
  const j = axisOf('transpose', b, x.rank);
  dims[i] = j;
  dims[j] = i;
  return permute(x, dims);
}

/** Elements [start, end) along `axis` (a copy). */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const op = 'slice';
  const backend = backendOf(op, [x]);
  const ax = axisOf(op, axis, x.rank);
  const n = x.shape[ax]!;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start > end) {
    throw new Error(`${op}: range [${start}, ${end}) is outside axis ${ax} of ${x.describe()}`);
  }
  const strides = stridesOf(x.shape);
  const shape = [...x.shape];
  shape[ax] = end - start;
  const view = { shape, strides, offset: start * strides[ax]! };
  const y = alloc(backend, shape, x.dtype, op);
  if (y.size > 0) backend.copy(y.buffer(), x.buffer(op), view);
  if (needsGrad([x])) {
    record(op, [x], [y], [], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      backend.fill(dx.buffer(), 0);
      if (g!.size > 0) backend.addInto(dx.buffer(), g!.buffer(op), view);
      return [dx];
    });
  }
  return y;
}

/** Splits along `axis` into pieces of the given sizes. */
export function split(x: Tensor, axis: number, sizes: readonly number[]): Tensor[] {
  const ax = axisOf('split', axis, x.rank);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== x.shape[ax])
    throw new Error(`split: sizes [${sizes.join(', ')}] add up to ${total}, axis ${ax} of ${x.describe()} has ${x.shape[ax]}`);
  let start = 0;
  return sizes.map((s) => {
    const piece = slice(x, ax, start, start + s);
    start += s;
    return piece;
  });
}

/** Joins tensors of equal shape except along `axis`. */
export function concat(xs: readonly Tensor[], axis: number): Tensor {
  const op = 'concat';
  if (xs.length === 0) throw new Error(`${op}: no tensors`);
  const backend = backendOf(op, xs);
  const first = xs[0]!;
  const ax = axisOf(op, axis, first.rank);
  for (const x of xs) {
    if (x.dtype !== first.dtype) throw new Error(`${op}: ${x.describe()} and ${first.describe()} differ in dtype`);
    if (x.rank !== first.rank || x.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new Error(`${op}: ${x.describe()} does not match ${first.describe()} outside axis ${ax}`);
    }
  }
  const shape = [...first.shape];
  shape[ax] = xs.reduce((a, x) => a + x.shape[ax]!, 0);
  const y = alloc(backend, shape, first.dtype, op);
  backend.fill(y.buffer(), 0);
  const strides = stridesOf(shape);
  let start = 0;
  const starts: number[] = [];
  for (const x of xs) {
    starts.push(start);
    if (x.size > 0) backend.addInto(y.buffer(), x.buffer(op), { shape: x.shape, strides, offset: start * strides[ax]! });
    start += x.shape[ax]!;
  }
  if (needsGrad(xs)) {
    record(op, xs, [y], [], ([g]) => xs.map((x, i) => (x.requiresGrad ? slice(g!, ax, starts[i]!, starts[i]! + x.shape[ax]!) : null)));
  }
  return y;
}

/** Broadcasts `x` to `shape` (a copy); size-1 and missing leading dimensions repeat. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const op = 'expand';
  const backend = backendOf(op, [x]);
  if (shape.length < x.rank || x.shape.some((d, i) => d !== 1 && d !== shape[shape.length - x.rank + i])) {
    throw new Error(`${op}: cannot expand ${x.describe()} to ${formatShape(shape)}`);
  }
  const y = alloc(backend, shape, x.dtype, op);
  if (y.size > 0) backend.copy(y.buffer(), x.buffer(op), broadcastView(x.shape, shape));
  if (needsGrad([x])) record(op, [x], [y], [], ([g]) => [sumTo(g!, x.shape)]);
  return y;
}

/** Sums `g` down to `shape` (the reverse of broadcasting). Returns a new tensor. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  const op = 'sumTo';
  const backend = backendOf(op, [g]);
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g.share();
  let current = g.share();
  const lead = g.rank - shape.length;
  // Sum away leading dimensions in one reduction.
  if (lead > 0) {
    const outer = 1;
    const red = shapeSize(g.shape.slice(0, lead));
    const inner = shapeSize(g.shape.slice(lead));
    const next = alloc(backend, g.shape.slice(lead), g.dtype, op);
    backend.reduce('sum', next.buffer(), current.buffer(op), outer, red, inner);
    current.dispose();
    current = next;
  }
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && current.shape[i] !== 1) {
      const outer = shapeSize(current.shape.slice(0, i));
      const inner = shapeSize(current.shape.slice(i + 1));
      const nextShape = [...current.shape];
      nextShape[i] = 1;
      const next = alloc(backend, nextShape, g.dtype, op);
      backend.reduce('sum', next.buffer(), current.buffer(op), outer, current.shape[i]!, inner);
      current.dispose();
      current = next;
    }
  }
  if (current.shape.some((d, i) => d !== shape[i])) throw new Error(`${op}: cannot sum ${g.describe()} to ${formatShape(shape)}`);
  return current;
}

/** Converts to another storage dtype (round to nearest even for f16/bf16). */
export function cast(x: Tensor, dtype: DType): Tensor {
  const op = 'cast';
  const backend = backendOf(op, [x]);
  if (x.dtype === dtype) return reshape(x, x.shape);
  const y = alloc(backend, x.shape, dtype, op);
  if (y.size > 0) backend.copy(y.buffer(), x.buffer(op), contiguousView(x.shape));
  if (needsGrad([x]) && dtype !== 'int32' && x.dtype !== 'int32') record(op, [x], [y], [], ([g]) => [cast(g!, x.dtype)]);
  return y;
}

/** A copy that shares nothing with `x` and is not connected to the tape. */
export function clone(x: Tensor): Tensor {
  const backend = backendOf('clone', [x]);
  const y = alloc(backend, x.shape, x.dtype, 'clone');
  if (y.size > 0) backend.copy(y.buffer(), x.buffer('clone'), contiguousView(x.shape));
  return y;
}

/** A new handle on the same memory that autograd does not follow (PyTorch's `detach`). */
export function detach(x: Tensor): Tensor {
  return x.share();
}
