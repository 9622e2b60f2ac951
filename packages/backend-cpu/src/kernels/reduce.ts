/** Reductions over the middle axis of [outer, reduce, inner], and row argmax. */
import type { DeviceBuffer, KernelFamily, KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, flushF32, readF32, scratch, writeF32 } from '../storage.js';

/**
 * out[o, i] = sum or max over r of x[o, r, i]. Sums accumulate in double precision; max
 * propagates NaN (like torch.amax). An empty reduction gives 0 (sum) or −Infinity (max).
 */
const reduce: KernelImpl<CpuContext, 'reduce'> = (_ctx, op, out, x, outer, reduce, inner) => {
  const o = out as CpuBuffer;
  const xb = x as CpuBuffer;
  const sum = op === 'sum';
  // out may be x: then results wait in scratch until every input is read.
  const ys = o === xb ? scratch(2, outer * inner) : writeF32(o, outer * inner, 2);
  const y0 = o === xb ? 0 : at(o, 0);
  if (inner === 1) {
    // Each row reduces to one value: accumulate in a double-precision local.
    for (let b = 0; b < outer; b++) {
      let acc = sum ? 0 : Number.NEGATIVE_INFINITY;
      const base = b * reduce;
      const xs = readF32(xb, base, reduce, 0);
      const xi = at(xb, base);
      if (sum) for (let r = 0; r < reduce; r++) acc += xs[xi + r];
      else
        for (let r = 0; r < reduce; r++) {
          const v = xs[xi + r];
          if (v > acc || Number.isNaN(v)) acc = v; // once NaN, stays NaN
        }
      ys[y0 + b] = acc;
    }
  } else {
    const acc = new Float64Array(inner);
    for (let b = 0; b < outer; b++) {
      acc.fill(sum ? 0 : Number.NEGATIVE_INFINITY);
      for (let r = 0; r < reduce; r++) {
        const base = (b * reduce + r) * inner;
        const xs = readF32(xb, base, inner, 0);
        const xi = at(xb, base);
        if (sum) for (let i = 0; i < inner; i++) acc[i] += xs[xi + i];
        else
          for (let i = 0; i < inner; i++) {
            const v = xs[xi + i];
            if (v > acc[i] || Number.isNaN(v)) acc[i] = v; // once NaN, stays NaN
          }
      }
      for (let i = 0; i < inner; i++) ys[y0 + b * inner + i] = acc[i];
    }
  }
  if (o === xb && o.dtype === 'float32') (o.data as Float32Array).set(ys.subarray(0, outer * inner));
  else flushF32(o, 0, outer * inner, ys);
};

/** out int32 [rows] = index of the largest value of each row; the first one on ties; a NaN counts as the largest (first NaN wins, like torch.argmax). */
function argmax(_ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, rows: number, cols: number): void {
  const o = (out as CpuBuffer).data as Int32Array;
  const xb = x as CpuBuffer;
  for (let r = 0; r < rows; r++) {
    const xs = readF32(xb, r * cols, cols, 0);
    const base = at(xb, r * cols);
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

/** reduce and argmax; their arguments are checked in core (kernelChecks). */
export const reduceKernels = { reduce, argmax } satisfies KernelFamily<CpuContext>;
