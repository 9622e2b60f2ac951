/** The oracle's batched matmul, with transposes, strides, alpha and accumulate. */
import type { MatmulParams } from '../../backend.js';
import type { Values } from './views.js';

/** Elements a matmul operand or output spans: the last batch matrix ends there. */
export function matmulSpan(batch: number, stride: number, matrix: number): number {
  return (batch - 1) * stride + matrix;
}

/**
 * out[b] = alpha · op(a[b]) · op(b[b]) (+ out[b] when accumulate). `out` is the initial content of
 * the output buffer (needed for accumulate; its length sets the result's length).
 */
export function matmul(a: Values, b: Values, p: MatmulParams, out?: Values): Float64Array {
  const { batch, m, n, k, transA, transB, strideA, strideB, strideOut, alpha, accumulate } = p;
  const result = out ? Float64Array.from(out) : new Float64Array(matmulSpan(batch, strideOut, m * n));
  for (let t = 0; t < batch; t++) {
    const aBase = t * strideA;
    const bBase = t * strideB;
    const oBase = t * strideOut;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) {
          const av = transA ? a[aBase + q * m + i]! : a[aBase + i * k + q]!;
          const bv = transB ? b[bBase + j * k + q]! : b[bBase + q * n + j]!;
          s += av * bv;
        }
        const o = oBase + i * n + j;
        result[o] = alpha * s + (accumulate ? result[o]! : 0);
      }
    }
  }
  return result;
}
