/**
 * Softmax cross-entropy over rows of logits [rows, classes] with int32 targets [rows].
 * lse is the max-shifted log-sum-exp of every row (ignored rows included), in one pass (online
 * softmax: the running sum is rescaled whenever the running max grows); a target that is
 * neither ignoreIndex nor in [0, classes) is an error.
 */
import { checkTargetsInRange, type KernelFamily, type KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, flushF32, readF32, writeF32 } from '../storage.js';
import { fastExp } from './math.js';

/** loss[r] = lse[r] − logits[r, target[r]], or 0 when target[r] = ignoreIndex. */
const crossEntropy: KernelImpl<CpuContext, 'crossEntropy'> = (_ctx, loss, lse, logits, targets, p) => {
  const { rows, classes } = p;
  const lossOut = (loss as CpuBuffer).data as Float32Array;
  const lseOut = (lse as CpuBuffer).data as Float32Array;
  const xb = logits as CpuBuffer;
  const ts = (targets as CpuBuffer).data as Int32Array;
  checkTargetsInRange('crossEntropy', ts, p); // a value check needs the data
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const xs = readF32(xb, base, classes, 0);
    const xi = at(xb, base);
    let max = Number.NEGATIVE_INFINITY;
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const v = xs[xi + c];
      if (v > max) {
        // A +Infinity logit makes the row NaN, as exp(x − max) with max = +Infinity does.
        sum = sum * fastExp(max - v) + (v === Number.POSITIVE_INFINITY ? Number.NaN : 1);
        max = v;
      } else if (v !== Number.NEGATIVE_INFINITY) {
        sum += fastExp(v - max); // a NaN logit makes sum NaN
      }
    }
    const l = max === Number.NEGATIVE_INFINITY && sum === 0 ? max : max + Math.log(sum);
    lseOut[r] = l;
    const t = ts[r];
    lossOut[r] = t === p.ignoreIndex ? 0 : l - xs[xi + t];
  }
};

/** dLogits[r] = (softmax(logits[r]) − onehot(target[r])) · dLoss[r], softmax = exp(logits − lse); 0 for ignored rows. */
const crossEntropyBackward: KernelImpl<CpuContext, 'crossEntropyBackward'> = (_ctx, dLogits, dLoss, logits, targets, lse, p) => {
  const { rows, classes } = p;
  const o = dLogits as CpuBuffer;
  const gb = dLoss as CpuBuffer;
  const xb = logits as CpuBuffer;
  const ts = (targets as CpuBuffer).data as Int32Array;
  const ls = (lse as CpuBuffer).data as Float32Array;
  checkTargetsInRange('crossEntropyBackward', ts, p);
  const g = readF32(gb, 0, rows, 1);
  const g0 = at(gb, 0);
  // In place over logits is safe: each element is read once, then written.
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const ds = writeF32(o, classes, 2);
    const di = at(o, base);
    const t = ts[r];
    if (t === p.ignoreIndex) {
      ds.fill(0, di, di + classes);
    } else {
      const xs = readF32(xb, base, classes, 0);
      const xi = at(xb, base);
      const l = ls[r];
      const gr = g[g0 + r];
      for (let c = 0; c < classes; c++) ds[di + c] = fastExp(xs[xi + c] - l) * gr;
      ds[di + t] -= gr;
    }
    flushF32(o, base, classes, ds);
  }
};

/** The loss kernels; their arguments are checked in core (kernelChecks), the targets' range here. */
export const lossKernels = { crossEntropy, crossEntropyBackward } satisfies KernelFamily<CpuContext>;
