import type { Backend, View } from '../backend.js';
import type { DType } from '../dtype.js';
import { empty, formatShape, type Tensor } from '../tensor.js';

/** The one backend all `tensors` live on; an error naming the op if they differ or one was disposed. */
export function backendOf(op: string, tensors: readonly (Tensor | null | undefined)[]): Backend {
  let backend: Backend | null = null;
  let first: Tensor | null = null;
  for (const t of tensors) {
    if (!t) continue;
    t.storage(op);
    if (!backend) {
      backend = t.backend;
      first = t;
    } else if (t.backend !== backend) {
      const where = t.backend.name === backend.name ? `another "${t.backend.name}" backend instance` : `"${t.backend.name}"`;
      throw new Error(
        `${op}: ${first!.describe()} is on backend "${backend.name}" but ${t.describe()} is on ${where}: copy one over with toBackend()`,
      );
    }
  }
  if (!backend) throw new Error(`${op}: no tensor input`);
  return backend;
}

/** Result dtype of a float op on a and b: equal dtypes stay, any mix computes in float32. */
export function promote(op: string, a: Tensor, b: Tensor): DType {
  if (a.dtype === 'int32' || b.dtype === 'int32') {
    if (a.dtype === b.dtype) return 'int32';
    throw new Error(`${op}: cannot mix ${a.describe()} and ${b.describe()}: cast the int32 tensor to a float dtype first`);
  }
  return a.dtype === b.dtype ? a.dtype : 'float32';
}

export function requireFloat(op: string, t: Tensor): void {
  if (t.dtype === 'int32') throw new Error(`${op}: ${t.describe()} must be a float tensor`);
}

export function requireInt(op: string, t: Tensor, what: string): void {
  if (t.dtype !== 'int32') throw new Error(`${op}: ${what} ${t.describe()} must be int32`);
}

export function requireShape(op: string, t: Tensor, shape: readonly number[], what: string): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${op}: ${what} ${t.describe()} must have shape ${formatShape(shape)}`);
  }
}

export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function contiguousView(shape: readonly number[]): View {
  return { shape, strides: stridesOf(shape), offset: 0 };
}

/** Normalises a possibly negative axis. */
export function axisOf(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new Error(`${op}: axis ${axis} is out of range for rank ${rank}`);
  return a;
}

export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together (dimension ${i}: ${da} vs ${db})`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** A view reading a contiguous tensor of `shape` as `outShape` (broadcast dims get stride 0). */
export function broadcastView(shape: readonly number[], outShape: readonly number[]): View {
  const strides = stridesOf(shape);
  const rank = outShape.length;
  const out = new Array<number>(rank).fill(0);
  for (let i = 0; i < shape.length; i++) {
    const j = rank - shape.length + i;
    out[j] = shape[i] === 1 && outShape[j] !== 1 ? 0 : strides[i]!;
  }
  return { shape: outShape, strides: out, offset: 0 };
}

/** Allocates an output on `backend`. */
export function alloc(backend: Backend, shape: readonly number[], dtype: DType, op: string): Tensor {
  return empty(backend, shape, dtype, op);
}

/** Returns `t` when its gradient is wanted, else disposes it and returns null. */
export function wanted(t: Tensor, want: boolean): Tensor | null {
  if (want) return t;
  t.dispose();
  return null;
}
