/** The oracle's embedding lookup and its backward (a scatter-add into the weight's rows). */
import type { Values } from './views.js';

export function embedding(weight: Values, ids: Values, n: number, dim: number): Float64Array {
  const out = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) out[i * dim + d] = weight[ids[i]! * dim + d]!;
  return out;
}

export function embeddingBackward(dOut: Values, ids: Values, n: number, dim: number, rows: number): Float64Array {
  const dWeight = new Float64Array(rows * dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) dWeight[ids[i]! * dim + d] = dWeight[ids[i]! * dim + d]! + dOut[i * dim + d]!;
  return dWeight;
}
