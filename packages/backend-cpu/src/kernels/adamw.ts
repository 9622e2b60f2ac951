/** AdamW, PyTorch semantics (decoupled weight decay, bias-corrected moments), in place. */
import type { KernelFamily, KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, chunkOf, flushF32, readF32 } from '../storage.js';

/**
 * For each element, with g = grad · gradScale:
 *   p ← p · (1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
 *   p ← p − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps)
 * m and v are float32; the parameter may be stored as float16/bfloat16 (rounded on store).
 */
const adamw: KernelImpl<CpuContext, 'adamw'> = (_ctx, param, grad, m, v, p, scalars) => {
  const pb = param as CpuBuffer;
  const n = pb.size;
  const gb = grad as CpuBuffer;
  const ms = (m as CpuBuffer).data as Float32Array;
  const vs = (v as CpuBuffer).data as Float32Array;
  const { beta1, beta2, eps, weightDecay } = p;
  let { lr, gradScale } = p;
  let bc1 = 1 - beta1 ** p.step;
  let bc2 = 1 - beta2 ** p.step;
  let decay = 1 - lr * weightDecay;
  if (scalars) {
    // lr, 1 − β1^t, 1 − β2^t and gradScale from the device (a replayable step); decay in float32 as the GPU kernels.
    const s = (scalars as CpuBuffer).data as Float32Array;
    [lr, bc1, bc2, gradScale] = [s[0]!, s[1]!, s[2]!, s[3]!];
    decay = Math.fround(1 - Math.fround(lr * Math.fround(weightDecay)));
  }
  const oneMinusBeta1 = 1 - beta1;
  const oneMinusBeta2 = 1 - beta2;
  const step = chunkOf(n, pb, gb);
  for (let start = 0; start < n; start += step) {
    const len = Math.min(step, n - start);
    const gs = readF32(gb, start, len, 0);
    const ps = readF32(pb, start, len, 1);
    const gi = at(gb, start);
    const pi = at(pb, start);
    for (let i = 0; i < len; i++) {
      const k = start + i;
      const g = gs[gi + i] * gradScale;
      // m and v are read back as stored (float32) for the update, as separate loops would.
      const mk = Math.fround(beta1 * ms[k] + oneMinusBeta1 * g);
      const vk = Math.fround(beta2 * vs[k] + oneMinusBeta2 * g * g);
      ms[k] = mk;
      vs[k] = vk;
      ps[pi + i] = ps[pi + i] * decay - (lr * (mk / bc1)) / (Math.sqrt(vk / bc2) + eps);
    }
    flushF32(pb, start, len, ps);
  }
};

/** The optimizer kernel; its arguments are checked in core (kernelChecks). */
export const adamwKernels = { adamw } satisfies KernelFamily<CpuContext>;
