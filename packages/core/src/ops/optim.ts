import type { AdamWParams } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { backendOf, requireShape } from './util.js';

/**
 * One AdamW update in place (PyTorch semantics: decoupled weight decay, bias-corrected
 * moments). `m` and `v` are float32 tensors shaped like `param`. Not recorded by autograd.
 */
export function adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, p: AdamWParams): void {
  const op = 'adamwStep';
  const backend = backendOf(op, [param, grad, m, v]);
  requireShape(op, grad, param.shape, 'grad');
  requireShape(op, m, param.shape, 'm');
  requireShape(op, v, param.shape, 'v');
  if (m.dtype !== 'float32' || v.dtype !== 'float32') throw new Error(`${op}: moments ${m.describe()} and ${v.describe()} must be float32`);
  if (!Number.isInteger(p.step) || p.step < 1) throw new Error(`${op}: step ${p.step} must be an integer >= 1`);
  if (param.size > 0) backend.adamw(param.buffer(op), grad.buffer(op), m.buffer(op), v.buffer(op), p);
}
