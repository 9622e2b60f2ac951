import { affine, type Backend, concat, div, full, minimum, noGrad, scale, type Tensor, tensor, tidy, unary, zeros } from '@peft/core';
import type { AdamW } from './adamw.js';
import { squaredNorm } from './clip.js';

/**
 * The update that both `train()` and `TrainingStep` apply once the gradients of a batch sit on
 * the trainable tensors: the global gradient norm, the clipping factor, and AdamW reading its
 * learning rate, bias corrections and gradient scale from the device. It is the one place where
 * clipping is computed: PyTorch's clip_grad_norm_, min(1, maxNorm / (norm + 1e-6)), in float32.
 */

/** The global gradient norm and the factor the gradients are scaled by, float32 [1] each, on the device. */
export interface GradientScale {
  norm: Tensor;
  coef: Tensor;
}

/**
 * √(Σ g²) over every element of `grads` and the clipping factor for `maxGradNorm` (1 when it is
 * null or ∞), as device tensors: nothing is read back. With no gradients the norm is 0.
 */
export function gradientScale(grads: readonly Tensor[], maxGradNorm: number | null, backend: Backend): GradientScale {
  return noGrad(() =>
    tidy(() => {
      const sq = squaredNorm(grads) ?? zeros([1], { backend, dtype: 'float32' });
      const norm = unary('sqrt', sq);
      const one = full([1], 1, { backend, dtype: 'float32' });
      const off = maxGradNorm === null || maxGradNorm === Number.POSITIVE_INFINITY;
      const coef = off ? one : minimum(div(scale(one, maxGradNorm), affine(norm, 1, 1e-6)), one);
      return { norm, coef };
    }),
  );
}

/**
 * AdamW over every parameter that has a gradient, with `hyper` (float32 [3]: `AdamW.hyper(lr, t)`)
 * and the clipping factor `coef` read on the device, so that a captured graph replays it with new
 * values. Every updated parameter shares the update number `t` that `hyper` was made for. Returns
 * the names updated; the gradients stay (the caller drops them).
 */
export function applyUpdate(optimizer: AdamW, hyper: Tensor, coef: Tensor, names?: ReadonlySet<string>): string[] {
  return noGrad(() => tidy(() => optimizer.stepWithScalars(concat([hyper, coef], 0), names)));
}

/**
 * `applyUpdate` with learning rate `lr`, the bias corrections written from the host: each
 * parameter with a gradient gets those of its own update number, as `AdamW.step` does (a parameter
 * that had no gradient in an earlier update is one update behind the others). Returns the names updated.
 */
export function applyUpdateAt(optimizer: AdamW, lr: number, coef: Tensor): string[] {
  const byStep = new Map<number, Set<string>>();
  for (const p of optimizer.params) {
    if (!p.tensor.grad) continue;
    const t = optimizer.stepsOf(p.name) + 1;
    const names = byStep.get(t) ?? new Set<string>();
    names.add(p.name);
    byStep.set(t, names);
  }
  const updated: string[] = [];
  for (const [t, names] of byStep) {
    const hyper = tensor(optimizer.hyper(lr, t), [3], { backend: coef.backend, dtype: 'float32' });
    try {
      updated.push(...applyUpdate(optimizer, hyper, coef, names));
    } finally {
      hyper.dispose();
    }
  }
  return updated;
}
