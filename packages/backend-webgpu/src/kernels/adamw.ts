/**
 * AdamW, PyTorch semantics, in place. With g = grad · gradScale:
 *   p ← p · (1 − lr·wd);  m ← β1·m + (1 − β1)·g;  v ← β2·v + (1 − β2)·g²
 *   p ← p − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + eps)
 * m and v are float32; the parameter may be float16/bfloat16 (rounded on store). The bias
 * corrections are computed in float64 on the host.
 */
import type { AdamWParams, DeviceBuffer } from '@peft/core';
import { arg, finite, same } from '../buffer.js';
import { type Ctx, map } from './common.js';

export function adamw(
  ctx: Ctx,
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
  const pb = arg(ctx.owner, K, 'param', param, 0, 'float');
  const n = pb.size;
  const gb = same(ctx.owner, K, 'grad', grad, n, 'float');
  const mb = same(ctx.owner, K, 'm', m, n, 'float32');
  const vb = same(ctx.owner, K, 'v', v, n, 'float32');
  if (pb === gb || pb === mb || pb === vb || mb === vb) throw new Error(`${K}: param, m and v must be distinct buffers`);
  const bindings = [
    { name: 'p', buf: pb, access: 'readwrite' },
    { name: 'g', buf: gb, access: 'read' },
    { name: 'm', buf: mb, access: 'readwrite' },
    { name: 'v', buf: vb, access: 'readwrite' },
  ] as const;
  // With scalars: lr, 1 − β1^t, 1 − β2^t and gradScale read from the device (a replayable step).
  const sb = scalars ? same(ctx.owner, K, 'scalars', scalars, 4, 'float32') : null;
  const [lr, gradScale, ibc1, ibc2, decay] = sb
    ? ['ld_s(0u)', 'ld_s(3u)', '(1.0 / ld_s(1u))', '(1.0 / ld_s(2u))', '(1.0 - ld_s(0u) * P.wd)']
    : ['P.lr', 'P.gradScale', 'P.ibc1', 'P.ibc2', 'P.decay'];
  map(
    ctx,
    K,
    n,
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
}
