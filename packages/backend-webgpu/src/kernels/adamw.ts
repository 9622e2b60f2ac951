/**
 * AdamW, PyTorch semantics, in place. With g = grad · gradScale:
 *   p ← p · (1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
 *   p ← p − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps)
 * m and v are float32; the parameter may be float16/bfloat16 (rounded on store). The bias
 * corrections are computed in float64 on the host.
 */
import type { KernelFamily } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import { type Ctx, map } from './common.js';

/** adamw; its arguments are checked in core (kernelChecks). */
export const adamwKernels = {
  adamw(ctx, param, grad, m, v, p, scalars) {
    const bindings = [
      { name: 'p', buf: param as WebGpuBuffer, access: 'readwrite' },
      { name: 'g', buf: grad as WebGpuBuffer, access: 'read' },
      { name: 'm', buf: m as WebGpuBuffer, access: 'readwrite' },
      { name: 'v', buf: v as WebGpuBuffer, access: 'readwrite' },
    ] as const;
    // With scalars: lr, 1 − β1^t, 1 − β2^t and gradScale read from the device (a replayable step).
    const sb = scalars ? (scalars as WebGpuBuffer) : null;
    const [lr, gradScale, ibc1, ibc2, decay] = sb
      ? ['ld_s(0u)', 'ld_s(3u)', '(1.0 / ld_s(1u))', '(1.0 / ld_s(2u))', '(1.0 - ld_s(0u) * P.wd)']
      : ['P.lr', 'P.gradScale', 'P.ibc1', 'P.ibc2', 'P.decay'];
    map(
      ctx,
      'adamw',
      param.size,
      sb ? [...bindings, { name: 's', buf: sb, access: 'read' }] : bindings,
      `let g = ld_g(i) * ${gradScale};
  let m = P.beta1 * ld_m(i) + (1.0 - P.beta1) * g;
  let v = P.beta2 * ld_v(i) + (1.0 - P.beta2) * g * g;
  st_m(i, m);
  st_v(i, v);
  st_p(i, ld_p(i) * ${decay} - ${lr} * (m * ${ibc1}) / (sqrt(v * ${ibc2}) + P.eps));`,
      [
        ['lr', 'f32', p.lr],
        ['beta1', 'f32', p.beta1],
        ['beta2', 'f32', p.beta2],
        ['eps', 'f32', p.eps],
        ['decay', 'f32', 1 - p.lr * p.weightDecay],
        ['wd', 'f32', p.weightDecay],
        ['gradScale', 'f32', p.gradScale],
        ['ibc1', 'f32', 1 / (1 - p.beta1 ** p.step)],
        ['ibc2', 'f32', 1 / (1 - p.beta2 ** p.step)],
      ],
    );
  },
} satisfies KernelFamily<Ctx>;
