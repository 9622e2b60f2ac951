/**
 * Host side of kernels/loss.cu: cross-entropy over rows of logits (saving log-sum-exp) and its
 * gradient. A target that is neither a class nor ignoreIndex gives NaN.
 */
import type { KernelFamily, KernelImpl } from '@peft/core';
import type { CudaBuffer } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, THREADS } from './common.js';

/** The kernels take ignoreIndex as an int (core checked that it is an integer). */
function checkIgnore(kernel: string, ignoreIndex: number): void {
  if (ignoreIndex < -2147483648 || ignoreIndex > 2147483647) {
    throw new Error(`${kernel}: ignoreIndex must be a 32-bit integer, got ${ignoreIndex}`);
  }
}

const crossEntropy: KernelImpl<Ctx, 'crossEntropy'> = (ctx, loss, lse, logits, targets, p) => {
  const { rows, classes } = p;
  checkIgnore('crossEntropy', p.ignoreIndex);
  const lo = loss as CudaBuffer;
  const ls = lse as CudaBuffer;
  const x = logits as CudaBuffer;
  const t = targets as CudaBuffer;
  if (rows === 0) return;
  const threads = Math.min(THREADS * 2, Math.max(32, Math.ceil(classes / 32) * 32));
  ctx.rt.launch('cross_entropy', [rows], [threads], 0, [lo.ptr, ls.ptr, x.ptr, DTYPE_CODE[x.dtype], t.ptr, classes, p.ignoreIndex]);
};

const crossEntropyBackward: KernelImpl<Ctx, 'crossEntropyBackward'> = (ctx, dLogits, dLoss, logits, targets, lse, p) => {
  const { rows, classes } = p;
  checkIgnore('crossEntropyBackward', p.ignoreIndex);
  const o = dLogits as CudaBuffer;
  const g = dLoss as CudaBuffer;
  const x = logits as CudaBuffer;
  const t = targets as CudaBuffer;
  const ls = lse as CudaBuffer;
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
};

/** The loss kernels; their arguments are checked in core (kernelChecks), ignoreIndex's 32-bit range here. */
export const lossKernels = { crossEntropy, crossEntropyBackward } satisfies KernelFamily<Ctx>;
