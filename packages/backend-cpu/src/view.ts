import type { View } from '@peft/core';

/**
 * One or more strided views over the same logical shape, flattened for a tight inner loop:
 * the shape is split into `rows` rows of `rowLen` elements; row r of view v starts at
 * `rowStart[v][r]` and steps by `step[v]`. Size-1 dimensions are dropped and dimensions that are
 * contiguous in every view are merged, so the inner loop is as long as possible.
 *
 * The rows themselves walk the `outer` dimensions (innermost first, their product is `rows`) with
 * `outerStrides[v]`, from `offset[v]`: a kernel can follow that odometer from any row instead of
 * reading `rowStart`, which is built only when first read (a pass over every row per view).
 */
export interface ViewPlan {
  readonly count: number;
  readonly rows: number;
  readonly rowLen: number;
  readonly rowStart: Float64Array[];
  readonly step: number[];
  /** Sizes of the dimensions the rows walk, innermost first (empty for a single row). */
  readonly outer: number[];
  /** Per view, the stride of each `outer` dimension. */
  readonly outerStrides: number[][];
  /** Per view, the element index of row 0. */
  readonly offset: number[];
  /** Smallest and largest element index each view touches (0 and -1 when count is 0). */
  readonly lo: number[];
  readonly hi: number[];
}

class Plan implements ViewPlan {
  private starts: Float64Array[] | null = null;

  constructor(
    readonly count: number,
    readonly rows: number,
    readonly rowLen: number,
    readonly step: number[],
    readonly outer: number[],
    readonly outerStrides: number[][],
    readonly offset: number[],
    readonly lo: number[],
    readonly hi: number[],
  ) {}

  get rowStart(): Float64Array[] {
    if (this.starts === null) this.starts = this.offset.map((_, v) => this.startsOf(v));
    return this.starts;
  }

  /** Row starts of view v: the odometer over `outer`. */
  private startsOf(v: number): Float64Array {
    const { rows, outer } = this;
    const strides = this.outerStrides[v];
    const starts = new Float64Array(rows);
    const idx = new Float64Array(outer.length);
    let pos = this.offset[v];
    for (let r = 0; r < rows; r++) {
      starts[r] = pos;
      for (let d = 0; d < outer.length; d++) {
        pos += strides[d];
        if (++idx[d] < outer[d]) break;
        pos -= strides[d] * outer[d];
        idx[d] = 0;
      }
    }
    return starts;
  }
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
  const outer = count === 0 ? [] : dims.slice(1);
  const outerStrides = strides.map((s) => (count === 0 ? [] : s.slice(1)));
  const offset = views.map((view) => view.offset);
  return new Plan(count, rows, rowLen, step, outer, outerStrides, offset, lo, hi);
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
