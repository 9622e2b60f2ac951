import type { AdamWParams } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireShape } from './util.js';

/**
 * One AdamW update in place (PyTorch semantics: decoupled weight decay, bias-corrected
 * moments). `m` and `v` are float32 tensors shaped like `param`. Not recorded by autograd.
 * `scalars` (float32 [4]: lr, 1 − β1^t, 1 − β2^t, gradScale) makes the kernel read those values
 * on the device, so that a captured training step can be replayed with a new learning rate,
 * step count and clipping factor (see `Backend.adamw`).
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams, scalars?: Tensor | null): void {
  const op = 'adamwStep';
  const backend = backendOf(op, scalars ? [param, grad, m, v, scalars] : [param, grad, m, v]);
  if (scalars && (scalars.dtype !== 'float32' || scalars.size !== 4)) {
    throw new Error(`${op}: scalars ${scalars.describe()} must be float32 with 4 elements (lr, 1 − β1^t, 1 − β2^t, gradScale)`);
  }
  requireShape(op, grad, param.shape, 'grad');
  requireShape(op, m, param.shape, 'm');
  requireShape(op, v, param.shape, 'v');
  if (m.dtype !== 'float32' || v.dtype !== 'float32') throw new Error(`${op}: moments ${m.describe()} and ${v.describe()} must be float32`);
  if (!Number.isInteger(p.step) || p.step < 1) throw new Error(`${op}: step ${p.step} must be an integer >= 1`);
  if (param.size > 0) backend.adamw(param.buffer(op), grad.buffer(op), m.buffer(op), v.buffer(op), p, scalars?.buffer(op) ?? null);
}
