/** The oracle's LayerNorm and RMSNorm; the backwards go through each row's explicit Jacobian. */
import type { NormParams } from '../../backend.js';
import type { Values } from './views.js';

function rowStats(x: Values, r: number, dim: number): { mean: number; variance: number; meanSquare: number } {
  let sum = 0;
  let sumSq = 0;
  for (let d = 0; d < dim; d++) {
    sum += x[r * dim + d]!;
    sumSq += x[r * dim + d]! ** 2;
  }
  const mean = sum / dim;
  let variance = 0;
  for (let d = 0; d < dim; d++) variance += (x[r * dim + d]! - mean) ** 2;
  return { mean, variance: variance / dim, meanSquare: sumSq / dim };
}

/** y = (x − mean)/√(var + eps) · weight + bias with the biased variance, as PyTorch. */
export function layerNorm(
  x: Values,
  weight: Values | null,
  bias: Values | null,
  p: NormParams,
): { out: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const { rows, dim, eps } = p;
  const out = new Float64Array(rows * dim);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const s = rowStats(x, r, dim);
    mean[r] = s.mean;
    rstd[r] = 1 / Math.sqrt(s.variance + eps);
    for (let d = 0; d < dim; d++) {
      const xhat = (x[r * dim + d]! - s.mean) * rstd[r]!;
      out[r * dim + d] = xhat * (weight ? weight[d]! : 1) + (bias ? bias[d]! : 0);
    }
  }
  return { out, mean, rstd };
}

/**
 * Through the explicit per-row Jacobian ∂y_i/∂x_j = w_i·(rstd·(δ_ij − 1/D) − rstd³·(x_i − μ)(x_j − μ)/D),
 * not the closed form backends use; statistics are recomputed from x in float64.
 */
export function layerNormBackward(
  dy: Values,
  x: Values,
  weight: Values | null,
  p: NormParams,
): { dx: Float64Array; dWeight: Float64Array; dBias: Float64Array } {
  const { rows, dim, eps } = p;
  const dx = new Float64Array(rows * dim);
  const dWeight = new Float64Array(dim);
  const dBias = new Float64Array(dim);
  // The row's operands in flat arrays and the Jacobian's per-row factors computed once: every
  // entry is still the full expression below, with the same float64 operations in the same order.
  const w = weight ? Float64Array.from(weight) : new Float64Array(dim).fill(1);
  const c = new Float64Array(dim);
  const g = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const { mean, variance } = rowStats(x, r, dim);
    const rs = 1 / Math.sqrt(variance + eps);
    const rs3 = rs ** 3;
    const [diag, off] = [rs * (1 - 1 / dim), rs * (0 - 1 / dim)]; // rs·(δ_ij − 1/D)
    for (let i = 0; i < dim; i++) {
      c[i] = x[r * dim + i]! - mean;
      g[i] = dy[r * dim + i]!;
    }
    for (let j = 0; j < dim; j++) {
      const cj = c[j]!;
      let acc = 0;
      for (let i = 0; i < dim; i++) {
        const jac = w[i]! * ((i === j ? diag : off) - (rs3 * c[i]! * cj) / dim);
        acc += g[i]! * jac;
      }
      dx[r * dim + j] = acc;
    }
    for (let i = 0; i < dim; i++) {
      dWeight[i] = dWeight[i]! + g[i]! * c[i]! * rs;
      dBias[i] = dBias[i]! + g[i]!;
    }
  }
  return { dx, dWeight, dBias };
}

/** y = x · rstd · weight, rstd = 1/√(mean(x²) + eps). */
export function rmsNorm(x: Values, weight: Values | null, p: NormParams): { out: Float64Array; rstd: Float64Array } {
  const { rows, dim, eps } = p;
  const out = new Float64Array(rows * dim);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    rstd[r] = 1 / Math.sqrt(rowStats(x, r, dim).meanSquare + eps);
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d]! * rstd[r]! * (weight ? weight[d]! : 1);
  }
  return { out, rstd };
}

/** Through the explicit Jacobian ∂y_i/∂x_j = w_i·(rstd·δ_ij − rstd³·x_i·x_j/D). */
export function rmsNormBackward(dy: Values, x: Values, weight: Values | null, p: NormParams): { dx: Float64Array; dWeight: Float64Array } {
  const { rows, dim, eps } = p;
  const dx = new Float64Array(rows * dim);
  const dWeight = new Float64Array(dim);
  // As in layerNormBackward: flat row operands and per-row factors, the same operations per entry.
  const w = weight ? Float64Array.from(weight) : new Float64Array(dim).fill(1);
  const xv = new Float64Array(dim);
  const g = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const rs = 1 / Math.sqrt(rowStats(x, r, dim).meanSquare + eps);
    const rs3 = rs ** 3;
    const [diag, off] = [rs * 1, rs * 0]; // rs·δ_ij
    for (let i = 0; i < dim; i++) {
      xv[i] = x[r * dim + i]!;
      g[i] = dy[r * dim + i]!;
    }
    for (let j = 0; j < dim; j++) {
      const xj = xv[j]!;
      let acc = 0;
      for (let i = 0; i < dim; i++) {
        const jac = w[i]! * ((i === j ? diag : off) - (rs3 * xv[i]! * xj) / dim);
        acc += g[i]! * jac;
      }
      dx[r * dim + j] = acc;
    }
    for (let i = 0; i < dim; i++) dWeight[i] = dWeight[i]! + g[i]! * xv[i]! * rs;
  }
  return { dx, dWeight };
}
