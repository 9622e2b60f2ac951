/** Host side of kernels/adamw.cu: the fused AdamW step (bias corrections computed here, per step). */
import type { AdamWParams, DeviceBuffer } from '@peft/core';
import { arg, finite, same } from '../buffer.js';
import { DTYPE_CODE } from '../kernels.js';
import { type Ctx, grid, THREADS } from './common.js';

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
  const g = same(ctx.owner, K, 'grad', grad, n, 'float');
  const mb = same(ctx.owner, K, 'm', m, n, 'float32');
  const vb = same(ctx.owner, K, 'v', v, n, 'float32');
  if (pb === g || pb === mb || pb === vb || mb === vb) throw new Error(`${K}: param, m and v must be distinct buffers`);
  const sb = scalars ? same(ctx.owner, K, 'scalars', scalars, 4, 'float32') : null;
  if (n === 0) return;
  ctx.rt.launch('adamw', [grid(ctx, n)], [THREADS], 0, [
    pb.ptr,
    DTYPE_CODE[pb.dtype],
    g.ptr,
    DTYPE_CODE[g.dtype],
    mb.ptr,
    vb.ptr,
    p.lr,
    p.beta1,
    p.beta2,
    p.eps,
    1 - p.lr * p.weightDecay,
    1 - p.beta1 ** p.step,
    1 - p.beta2 ** p.step,
    p.gradScale,
    sb ? sb.ptr : 0,
    p.weightDecay,
    n,
  ]);
}
