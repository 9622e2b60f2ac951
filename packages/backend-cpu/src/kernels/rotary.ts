/**
 * Rotary position embedding, rotate-half layout (GPT-NeoX; Llama in transformers). For a head
 * vector x and i < half = rotaryDim/2, with θ_i = (position / positionScale) · base^(−2i/rotaryDim):
 *   out[i]        = x[i]·cos θ_i − x[i+half]·sin θ_i
 *   out[i + half] = x[i+half]·cos θ_i + x[i]·sin θ_i
 * Features from rotaryDim on pass through. Angles, cos and sin are computed in double precision.
 * The backward is the rotation by −θ.
 */
import type { DeviceBuffer, RotaryParams } from '@peft/core';
import { arg, type CpuContext, counts, finite } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

export function rotary(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, 'rotary', ['out', 'x'], out, x, positions, p, 1);
}

export function rotaryBackward(ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, 'rotaryBackward', ['dx', 'dy'], dx, dy, positions, p, -1);
}

function rotate(
  ctx: CpuContext,
  K: string,
  names: [string, string],
  out: DeviceBuffer,
  x: DeviceBuffer,
  positions: DeviceBuffer,
  p: RotaryParams,
  sign: 1 | -1,
): void {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  counts(K, { batch, seq, heads, headDim, rotaryDim });
  finite(K, 'base', base);
  finite(K, 'positionScale', positionScale);
  if (rotaryDim % 2 !== 0 || rotaryDim > headDim)
    throw new Error(`${K}: rotaryDim ${rotaryDim} must be even and at most headDim ${headDim}`);
  if (!(base > 0) || !(positionScale > 0)) throw new Error(`${K}: base (${base}) and positionScale (${positionScale}) must be positive`);
  const n = batch * seq * heads * headDim;
  const o = arg(ctx, K, names[0], out, n, 'float');
  const xs = loadF32(arg(ctx, K, names[1], x, n, 'float'), 0, n);
  const pos = arg(ctx, K, 'positions', positions, batch * seq, 'int32').data as Int32Array;
  const ys = outF32(o, n); // in place is safe: each pair is read before it is written
  const half = rotaryDim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / base ** ((2 * i) / rotaryDim);
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let t = 0; t < batch * seq; t++) {
    const scaled = pos[t] / positionScale;
    for (let i = 0; i < half; i++) {
      const angle = scaled * invFreq[i];
      cos[i] = Math.cos(angle);
      sin[i] = sign * Math.sin(angle);
    }
    for (let h = 0; h < heads; h++) {
      const at = (t * heads + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = xs[at + i];
        const b = xs[at + i + half];
        ys[at + i] = a * cos[i] - b * sin[i];
        ys[at + i + half] = b * cos[i] + a * sin[i];
      }
      for (let i = rotaryDim; i < headDim; i++) ys[at + i] = xs[at + i];
    }
  }
  storeF32(o, ys);
}
