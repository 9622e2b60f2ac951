/**
 * Host side of kernels/loss.cu: cross-entropy over rows of logits (saving log-sum-exp) and its
 * gradient. A target that is neither a class nor ignoreIndex gives NaN.
 */
import type { CrossEntropyParams, DeviceBuffer } from '@peft/core';
import { arg, counts } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, THREADS } from './common.js';

function checkIgnore(kernel: string, ignoreIndex: number): void {
  if (!Number.isSafeInteger(ignoreIndex) || ignoreIndex < -2147483648 || ignoreIndex > 2147483647) {
    throw new Error(`${kernel}: ignoreIndex must be a 32-bit integer, got ${ignoreIndex}`);
  }
}

export function crossEntropy(
  ctx: Ctx,
  loss: DeviceBuffer,
  lse: DeviceBuffer,
  logits: DeviceBuffer,
  targets: DeviceBuffer,
  p: CrossEntropyParams,
): void {
  const K = 'crossEntropy';
  const { rows, classes } = p;
  counts(K, { rows, classes });
  checkIgnore(K, p.ignoreIndex);
  const lo = arg(ctx.owner, K, 'loss', loss, rows, 'float32');
  const ls = arg(ctx.owner, K, 'lse', lse, rows, 'float32');
  const x = arg(ctx.owner, K, 'logits', logits, rows * classes, 'float');
  const t = arg(ctx.owner, K, 'targets', targets, rows, 'int32');
  if (rows === 0) return;
  const threads = Math.min(THREADS * 2, Math.max(32, Math.ceil(classes / 32) * 32));
  ctx.rt.launch('cross_entropy', [rows], [threads], 0, [lo.ptr, ls.ptr, x.ptr, DTYPE_CODE[x.dtype], t.ptr, classes, p.ignoreIndex]);
}

export function crossEntropyBackward(
  ctx: Ctx,
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
  checkIgnore(K, p.ignoreIndex);
  const o = arg(ctx.owner, K, 'dLogits', dLogits, rows * classes, 'float');
  const g = arg(ctx.owner, K, 'dLoss', dLoss, rows, 'float');
  const x = arg(ctx.owner, K, 'logits', logits, rows * classes, 'float');
  const t = arg(ctx.owner, K, 'targets', targets, rows, 'int32');
  const ls = arg(ctx.owner, K, 'lse', lse, rows, 'float32');
  if (rows * classes === 0) return;
  const chunks = Math.max(1, Math.min(65535, Math.ceil(classes / THREADS / 4)));
  ctx.rt.launch('cross_entropy_backward', [rows, chunks], [THREADS], 0, [
    o.ptr,
    DTYPE_CODE[o.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    x.ptr,
    DTYPE_CODE[x.dtype],
    t.ptr,
    ls.ptr,
    classes,
    p.ignoreIndex,
  ]);
}
