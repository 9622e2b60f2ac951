/** The oracle's AdamW update. */
import type { AdamWParams } from '../../backend.js';
import type { Values } from './views.js';

/** PyTorch AdamW: p ← p − lr·wd·p; g ← grad·gradScale; moments; bias-corrected update. */
export function adamw(
  param: Values,
  grad: Values,
  m: Values,
  v: Values,
  p: AdamWParams,
  scalars?: Values | null,
): { param: Float64Array; m: Float64Array; v: Float64Array } {
  const { beta1, beta2, eps, weightDecay } = p;
  // With device scalars (lr, 1 − β1^t, 1 − β2^t, gradScale) those replace p's values.
  const lr = scalars ? scalars[0]! : p.lr;
  const bc1 = scalars ? scalars[1]! : 1 - beta1 ** p.step;
  const bc2 = scalars ? scalars[2]! : 1 - beta2 ** p.step;
  const gradScale = scalars ? scalars[3]! : p.gradScale;
  const outP = new Float64Array(param.length);
  const outM = new Float64Array(param.length);
  const outV = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]! * gradScale;
    const decayed = param[i]! - lr * weightDecay * param[i]!;
    outM[i] = beta1 * m[i]! + (1 - beta1) * g;
    outV[i] = beta2 * v[i]! + (1 - beta2) * g * g;
    const mHat = outM[i]! / bc1;
    const vHat = outV[i]! / bc2;
    outP[i] = decayed - (lr * mHat) / (Math.sqrt(vHat) + eps);
  }
  return { param: outP, m: outM, v: outV };
}
