import { add, cast, noGrad, reshape, square, sum, type Tensor, tidy } from '@peft/core';

/**
 * Σ g² over every element of every tensor, as one float32 scalar [1] on the device: nothing is
 * read back, so the caller can batch the read with other values. Null when the list is empty.
 */
export function squaredNorm(tensors: Iterable<Tensor>): Tensor | null {
  return noGrad(() =>
    tidy(() => {
      let total: Tensor | null = null;
      for (const g of tensors) {
        const x = g.dtype === 'float32' ? g : cast(g, 'float32');
        const s = reshape(sum(square(x)), [1]);
        total = total ? add(total, s) : s;
      }
      return total;
    }),
  );
}

/**
 * The factor that makes the global gradient norm `maxNorm` when it is larger, as PyTorch's
 * `clip_grad_norm_`: min(1, maxNorm / (norm + 1e-6)). 1 when clipping is off (`maxNorm` null or ∞).
 */
export function clipCoefficient(norm: number, maxNorm: number | null): number {
  if (maxNorm === null || maxNorm === Number.POSITIVE_INFINITY) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}
