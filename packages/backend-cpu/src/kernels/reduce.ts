/** Reductions over the middle axis of [outer, reduce, inner], and row argmax. */
import type { DeviceBuffer, ReduceOp } from '@peft/core';
import { arg, type CpuContext, counts } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

/**
 * out[o, i] = sum or max over r of x[o, r, i]. Sums accumulate in double precision; max
 * propagates NaN (like torch.amax). An empty reduction gives 0 (sum) or −Infinity (max).
 */
export function reduce(
  ctx: CpuContext,
  op: ReduceOp,
  out: DeviceBuffer,
  x: DeviceBuffer,
  outer: number,
  reduce: number,
  inner: number,
): void {
  const kernel = `reduce(${op})`;
  counts(kernel, { outer, reduce, inner });
  if (op !== 'sum' && op !== 'max') throw new Error(`reduce: unknown op ${JSON.stringify(op)}`);
  const o = arg(ctx, kernel, 'out', out, outer * inner, 'float');
  const xs = loadF32(arg(ctx, kernel, 'x', x, outer * reduce * inner, 'float'), 0, outer * reduce * inner);
  const ys = o === x ? new Float32Array(outer * inner) : outF32(o, outer * inner);
  const acc = new Float64Array(inner);
  for (let b = 0; b < outer; b++) {
    acc.fill(op === 'sum' ? 0 : Number.NEGATIVE_INFINITY);
    for (let r = 0; r < reduce; r++) {
      const base = (b * reduce + r) * inner;
      if (op === 'sum') for (let i = 0; i < inner; i++) acc[i] += xs[base + i];
      else
        for (let i = 0; i < inner; i++) {
          const v = xs[base + i];
          if (v > acc[i] || Number.isNaN(v)) acc[i] = v; // once NaN, stays NaN
        }
    }
    ys.set(acc, b * inner);
  }
  storeF32(o, ys);
}

/** out int32 [rows] = index of the largest value of each row; the first one on ties; a NaN counts as the largest (first NaN wins, like torch.argmax). */
export function argmax(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
  counts('argmax', { rows, cols });
  if (cols === 0 && rows > 0) throw new Error('argmax: cols is 0, so the rows have no largest element');
  const o = arg(ctx, 'argmax', 'out', out, rows, 'int32').data as Int32Array;
  const xs = loadF32(arg(ctx, 'argmax', 'x', x, rows * cols, 'float'), 0, rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let best = 0;
    let bestV = xs[base];
    if (!Number.isNaN(bestV)) {
      for (let c = 1; c < cols; c++) {
        const v = xs[base + c];
        if (Number.isNaN(v)) {
          best = c;
          break;
        }
        if (v > bestV) {
          best = c;
          bestV = v;
        }
      }
    }
    o[r] = best;
  }
}
