/**
 * Rotary position embedding, rotate-half layout (GPT-NeoX; Llama in transformers): for i < half =
 * rotaryDim/2 and θ_i = (position / positionScale) · base^(−2i/rotaryDim),
 *   out[i] = x[i]·cos θ_i − x[i+half]·sin θ_i,  out[i+half] = x[i+half]·cos θ_i + x[i]·sin θ_i.
 * The frequencies are computed in float64 on the host; the angle is a float32 product; sin and
 * cos are our own (see math.ts). The backward rotates by −θ.
 */
import type { DeviceBuffer, RotaryParams } from '@peft/core';
import { arg, counts, finite } from '../buffer.js';
import type { Ctx } from './common.js';
import { SINCOS } from './math.js';

export function rotary(ctx: Ctx, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, 'rotary', ['out', 'x'], out, x, positions, p, 1);
}

export function rotaryBackward(ctx: Ctx, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
  rotate(ctx, 'rotaryBackward', ['dx', 'dy'], dx, dy, positions, p, -1);
}

function rotate(
  ctx: Ctx,
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
  const o = arg(ctx.owner, K, names[0], out, n, 'float');
  const xb = arg(ctx.owner, K, names[1], x, n, 'float');
  const pos = arg(ctx.owner, K, 'positions', positions, batch * seq, 'int32');
  const half = rotaryDim / 2;
  const freq = Array.from({ length: Math.max(1, half) }, (_, i) => 1 / base ** ((2 * i) / rotaryDim) / positionScale);
  ctx.rt.launch({
    kernel: K,
    params: [
      ['n', 'u32', n],
      ['headDim', 'u32', headDim],
      ['heads', 'u32', heads],
      ['half', 'u32', half],
      ['sign', 'f32', sign],
    ],
    array: { name: 'freq', type: 'f32', values: freq },
    bindings: [
      { name: 'out', buf: o, access: 'write' },
      { name: 'x', buf: xb, access: 'read' },
      { name: 'pos', buf: pos, access: 'read' },
    ],
    code: `${SINCOS}
fn kernel(group: u32, lid: u32, wid: vec3<u32>) {
  let i = group * 256u + lid;
  if (i >= P.n) { return; }
  let j = i % P.headDim;
  if (j >= 2u * P.half) { st_out(i, ld_x(i)); return; }
  let t = i / (P.headDim * P.heads);
  let lo = j < P.half;
  let f = select(j - P.half, j, lo);
  let a = f32(ld_pos(t)) * P.freq[f / 4u][f % 4u];
  let sc = sincos(a);
  let c = sc.y;
  let s = P.sign * sc.x;
  let xi = ld_x(i);
  if (lo) { st_out(i, xi * c - ld_x(i + P.half) * s); } else { st_out(i, xi * c + ld_x(i - P.half) * s); }
}`,
    groups: Math.ceil(n / 256),
  });
}
