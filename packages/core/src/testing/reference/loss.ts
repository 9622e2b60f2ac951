/** The oracle's cross-entropy over rows of logits, with an ignore index. */
import type { CrossEntropyParams } from '../../backend.js';
import type { Values } from './views.js';

/** loss = logsumexp(row) − row[target], 0 for ignored rows; lse is computed for every row. */
export function crossEntropy(logits: Values, targets: Values, p: CrossEntropyParams): { loss: Float64Array; lse: Float64Array } {
  const { rows, classes, ignoreIndex } = p;
  const loss = new Float64Array(rows);
  const lse = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[r * classes + c]!);
    let z = 0;
    for (let c = 0; c < classes; c++) z += Math.exp(logits[r * classes + c]! - max);
    lse[r] = max + Math.log(z);
    const t = targets[r]!;
    loss[r] = t === ignoreIndex ? 0 : lse[r]! - logits[r * classes + t]!;
  }
  return { loss, lse };
}

export function crossEntropyBackward(dLoss: Values, logits: Values, targets: Values, p: CrossEntropyParams): Float64Array {
  const { rows, classes, ignoreIndex } = p;
  const { lse } = crossEntropy(logits, targets, p);
  const d = new Float64Array(rows * classes);
  for (let r = 0; r < rows; r++) {
    if (targets[r] === ignoreIndex) continue;
    for (let c = 0; c < classes; c++) {
      const softmax = Math.exp(logits[r * classes + c]! - lse[r]!);
      d[r * classes + c] = (softmax - (c === targets[r] ? 1 : 0)) * dLoss[r]!;
    }
  }
  return d;
}
