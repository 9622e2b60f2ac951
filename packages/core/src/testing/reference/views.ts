/** The oracle's views, and the kernels that move data through them: fill, copy, addInto. */
import type { View } from '../../backend.js';

export type Values = ArrayLike<number>;

export function viewSize(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

/** Buffer offset of every element of a view, in row-major order of `view.shape`. */
export function viewOffsets(view: View): number[] {
  const n = viewSize(view.shape);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let rem = i;
    let off = view.offset;
    for (let d = view.shape.length - 1; d >= 0; d--) {
      const s = view.shape[d]!;
      off += (rem % s) * view.strides[d]!;
      rem = Math.floor(rem / s);
    }
    out[i] = off;
  }
  return out;
}

/** The contiguous row-major view of a shape. */
export function contiguousView(shape: readonly number[], offset = 0): View {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d]!;
  }
  return { shape, strides, offset };
}

export function fill(size: number, value: number): Float64Array {
  return new Float64Array(size).fill(value);
}

export function copy(x: Values, view: View): Float64Array {
  return Float64Array.from(viewOffsets(view), (o) => x[o]!);
}

/** Returns the new dst: dst[view(i)] += src[i]. */
export function addInto(dst: Values, src: Values, view: View): Float64Array {
  const out = Float64Array.from(dst);
  viewOffsets(view).forEach((o, i) => {
    out[o] = out[o]! + src[i]!;
  });
  return out;
}
