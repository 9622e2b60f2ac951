/** AdamW, PyTorch semantics (decoupled weight decay, bias-corrected moments), in place. */
import type { AdamWParams, DeviceBuffer } from '@peft/core';
import { arg, type CpuContext, finite, same } from '../buffer.js';
import { loadF32, storeF32 } from '../storage.js';

/**
 * For each element, with g = grad · gradScale:
 *   p ← p · (1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
 *   p ← p − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps)
 * m and v are float32; the parameter may be stored as float16/bfloat16 (rounded on store).
 */
export function adamw(
  ctx: CpuContext,
  param: DeviceBuffer,
  grad: DeviceBuffer,
  m: DeviceBuffer,
  v: DeviceBuffer,
  p: AdamWParams,
  scalars?: DeviceBuffer | null,
): void {
  const K = 'adamw';
  for (const key of ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'gradScale'] as const) finite(K, key, p[key]);
  if (!Number.isSafeInteger(p.step) || p.step < 1) throw new Error(`${K}: step must be an integer ≥ 1 (it is 1-based), got ${p.step}`);
  const pb = arg(ctx, K, 'param', param, 0, 'float');
  const n = pb.size;
  const gs = loadF32(same(ctx, K, 'grad', grad, n, 'float'), 0, n);
  const ms = same(ctx, K, 'm', m, n, 'float32').data as Float32Array;
  const vs = same(ctx, K, 'v', v, n, 'float32').data as Float32Array;
  if (pb === grad || pb === m || pb === v || m === v) throw new Error(`${K}: param, m and v must be distinct buffers`);
  const ps = loadF32(pb, 0, n);
  const { beta1, beta2, eps, weightDecay } = p;
  let { lr, gradScale } = p;
  let bc1 = 1 - beta1 ** p.step;
  let bc2 = 1 - beta2 ** p.step;
  let decay = 1 - lr * weightDecay;
  if (scalars) {
    // lr, 1 − β1^t, 1 − β2^t and gradScale from the device (a replayable step); decay in float32 as the GPU kernels.
    const s = same(ctx, K, 'scalars', scalars, 4, 'float32').data as Float32Array;
    [lr, bc1, bc2, gradScale] = [s[0]!, s[1]!, s[2]!, s[3]!];
    decay = Math.fround(1 - Math.fround(lr * Math.fround(weightDecay)));
  }
  for (let i = 0; i < n; i++) {
    const g = gs[i] * gradScale;
    ms[i] = beta1 * ms[i] + (1 - beta1) * g;
    vs[i] = beta2 * vs[i] + (1 - beta2) * g * g;
    ps[i] = ps[i] * decay - (lr * (ms[i] / bc1)) / (Math.sqrt(vs[i] / bc2) + eps);
  }
  storeF32(pb, ps);
}
