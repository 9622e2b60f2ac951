/**
 * Philox4x32-10 random numbers and dropout; the numbers are core's `philoxUniform` /
 * `philoxNormal` bit for bit (rounded to the output's storage dtype).
 */
import { type DeviceBuffer, type DropoutParams, philoxNormal, philoxUniform, type RandomParams } from '@peft/core';
import { arg, type CpuContext, finite, same } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

export function random(ctx: CpuContext, out: DeviceBuffer, p: RandomParams): void {
  const o = arg(ctx, 'random', 'out', out, 0, 'float');
  finite('random', 'low', p.low);
  finite('random', 'high', p.high);
  let values: Float32Array;
  if (p.distribution === 'uniform') values = philoxUniform(p.seed, p.offset, o.size, p.low, p.high);
  else if (p.distribution === 'normal') values = philoxNormal(p.seed, p.offset, o.size, p.low, p.high);
  else throw new Error(`random: distribution ${JSON.stringify(p.distribution)} is not supported: use uniform or normal`);
  storeF32(o, values);
}

/**
 * out = x · mask / (1 − p) with mask[i] = (u[i] ≥ p), u = philoxUniform(seed, offset, n). p is
 * compared in float32 (as a GPU kernel would). p = 0 keeps everything; p = 1 gives zeros.
 */
export function dropout(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  applyMask(ctx, 'dropout', ['out', 'x'], out, x, p);
}

/** dx = dy · mask / (1 − p), the mask regenerated from (seed, offset). */
export function dropoutBackward(ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, p: DropoutParams): void {
  applyMask(ctx, 'dropoutBackward', ['dx', 'dy'], dx, dy, p);
}

function applyMask(ctx: CpuContext, K: string, names: [string, string], out: DeviceBuffer, x: DeviceBuffer, p: DropoutParams): void {
  finite(K, 'p', p.p);
  if (p.p < 0 || p.p > 1) throw new Error(`${K}: p must be in [0, 1], got ${p.p}`);
  const o = arg(ctx, K, names[0], out, 0, 'float');
  const n = o.size;
  const xs = loadF32(same(ctx, K, names[1], x, n, 'float'), 0, n);
  const u = philoxUniform(p.seed, p.offset, n);
  const threshold = Math.fround(p.p);
  const scale = p.p < 1 ? 1 / (1 - p.p) : 0;
  const ys = outF32(o, n);
  for (let i = 0; i < n; i++) ys[i] = u[i] >= threshold ? xs[i] * scale : 0;
  storeF32(o, ys);
}
