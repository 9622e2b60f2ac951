/**
 * Softmax cross-entropy over rows of logits [rows, classes] with int32 targets [rows].
 * lse is the max-shifted log-sum-exp of every row (ignored rows included); a target that is
 * neither ignoreIndex nor in [0, classes) is an error.
 */
import type { CrossEntropyParams, DeviceBuffer } from '@peft/core';
import { arg, type CpuContext, counts } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

function checkTargets(K: string, targets: Int32Array, p: CrossEntropyParams): void {
  for (let r = 0; r < p.rows; r++) {
    const t = targets[r];
    if (t !== p.ignoreIndex && (t < 0 || t >= p.classes)) {
      throw new Error(`${K}: targets[${r}] = ${t} is not a class: use 0..${p.classes - 1} or ignoreIndex ${p.ignoreIndex}`);
    }
  }
}

/** loss[r] = lse[r] − logits[r, target[r]], or 0 when target[r] = ignoreIndex. */
export function crossEntropy(
  ctx: CpuContext,
  loss: DeviceBuffer,
  lse: DeviceBuffer,
  logits: DeviceBuffer,
  targets: DeviceBuffer,
  p: CrossEntropyParams,
): void {
  const K = 'crossEntropy';
  const { rows, classes } = p;
  counts(K, { rows, classes });
  if (!Number.isSafeInteger(p.ignoreIndex)) throw new Error(`${K}: ignoreIndex must be an integer, got ${p.ignoreIndex}`);
  const lossOut = arg(ctx, K, 'loss', loss, rows, 'float32').data as Float32Array;
  const lseOut = arg(ctx, K, 'lse', lse, rows, 'float32').data as Float32Array;
  const xs = loadF32(arg(ctx, K, 'logits', logits, rows * classes, 'float'), 0, rows * classes);
  const ts = arg(ctx, K, 'targets', targets, rows, 'int32').data as Int32Array;
  checkTargets(K, ts, p);
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) if (xs[base + c] > max || Number.isNaN(xs[base + c])) max = xs[base + c];
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(xs[base + c] - max);
    const l = max === Number.NEGATIVE_INFINITY ? max : max + Math.log(sum);
    lseOut[r] = l;
    const t = ts[r];
    lossOut[r] = t === p.ignoreIndex ? 0 : l - xs[base + t];
  }
}

/** dLogits[r] = (softmax(logits[r]) − onehot(target[r])) · dLoss[r], softmax = exp(logits − lse); 0 for ignored rows. */
export function crossEntropyBackward(
  ctx: CpuContext,
  dLogits: DeviceBuffer,
  dLoss: DeviceBuffer,
  logits: DeviceBuffer,
  targets: DeviceBuffer,
  lse: DeviceBuffer,
  p: CrossEntropyParams,
): void {
  const K = 'crossEntropyBackward';
  const { rows, classes } = p;
  counts(K, { rows, classes });
  const o = arg(ctx, K, 'dLogits', dLogits, rows * classes, 'float');
  const g = loadF32(arg(ctx, K, 'dLoss', dLoss, rows, 'float'), 0, rows);
  const xs = loadF32(arg(ctx, K, 'logits', logits, rows * classes, 'float'), 0, rows * classes);
  const ts = arg(ctx, K, 'targets', targets, rows, 'int32').data as Int32Array;
  const ls = arg(ctx, K, 'lse', lse, rows, 'float32').data as Float32Array;
  checkTargets(K, ts, p);
  const ds = outF32(o, rows * classes); // in place over logits is safe: each element is read once, then written
  for (let r = 0; r < rows; r++) {
    const base = r * classes;
    const t = ts[r];
    if (t === p.ignoreIndex) {
      ds.fill(0, base, base + classes);
      continue;
    }
    const l = ls[r];
    const gr = g[r];
    for (let c = 0; c < classes; c++) ds[base + c] = Math.exp(xs[base + c] - l) * gr;
    ds[base + t] -= gr;
  }
  storeF32(o, ds);
}
