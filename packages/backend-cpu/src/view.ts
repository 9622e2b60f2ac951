import type { View } from '@peft/core';

/**
 * One or more strided views over the same logical shape, flattened for a tight inner loop:
 * the shape is split into `rows` rows of `rowLen` elements; row r of view v starts at
 * `rowStart[v][r]` and steps by `step[v]`. Size-1 dimensions are dropped and dimensions that are
 * contiguous in every view are merged, so the inner loop is as long as possible.
 */
export interface ViewPlan {
  count: number;
  rows: number;
  rowLen: number;
  rowStart: Float64Array[];
  step: number[];
  /** Smallest and largest element index each view touches (0 and -1 when count is 0). */
  lo: number[];
  hi: number[];
}

/** Plans the iteration of views of `shape` (checked in core by checkView: in bounds, integer strides). */
export function planViews(shape: readonly number[], views: readonly View[]): ViewPlan {
  let count = 1;
  for (const d of shape) count *= d;
  const lo: number[] = [];
  const hi: number[] = [];
  for (const view of views) {
    let min = view.offset;
    let max = view.offset;
    for (let d = 0; d < shape.length; d++) {
      const reach = (shape[d] - 1) * view.strides[d];
      if (reach < 0) min += reach;
      else max += reach;
    }
    lo.push(count === 0 ? 0 : min);
    hi.push(count === 0 ? -1 : max);
  }

  // Innermost first: drop size-1 dims, merge a dim into the one inside it when contiguous in every view.
  const dims: number[] = [];
  const strides: number[][] = views.map(() => []);
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && views.every((view, v) => view.strides[d] === strides[v][last] * dims[last])) {
      dims[last] *= shape[d];
      continue;
    }
    dims.push(shape[d]);
    for (let v = 0; v < views.length; v++) strides[v].push(views[v].strides[d]);
  }
  const rowLen = count === 0 ? 0 : dims.length > 0 ? dims[0] : 1;
  const rows = count === 0 ? 0 : count / rowLen;
  const step = views.map((_, v) => (dims.length > 0 ? strides[v][0] : 0));
  const rowStart = views.map((view, v) => {
    const starts = new Float64Array(rows);
    const idx = new Array<number>(dims.length).fill(0);
    let pos = view.offset;
    for (let r = 0; r < rows; r++) {
      starts[r] = pos;
      // odometer over dims[1..]
      for (let d = 1; d < dims.length; d++) {
        idx[d]++;
        pos += strides[v][d];
        if (idx[d] < dims[d]) break;
        pos -= strides[v][d] * dims[d];
        idx[d] = 0;
      }
    }
    return starts;
  });
  return { count, rows, rowLen, rowStart, step, lo, hi };
}

/** The view in the contiguous layout of `shape` (row-major), at offset 0. */
export function contiguousView(shape: readonly number[]): View {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = s;
    s *= shape[d];
  }
  return { shape, strides, offset: 0 };
}
