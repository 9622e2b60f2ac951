/**
 * Rotary position embedding, rotate-half layout (GPT-NeoX; Llama in transformers): for i < half =
 * rotaryDim/2 and θ_i = (position / positionScale) · base^(−2i/rotaryDim),
 *   out[i] = x[i]·cos θ_i − x[i+half]·sin θ_i,  out[i+half] = x[i+half]·cos θ_i + x[i]·sin θ_i.
 * The frequencies are computed in float64 on the host; the angle is a float32 product; sin and
 * cos are our own (see math.ts). The backward rotates by −θ.
 */
import type { KernelFamily, RotaryParams } from '@peft/core';
import type { WebGpuBuffer } from '../buffer.js';
import type { Ctx } from './common.js';
import { SINCOS } from './math.js';

/** rotary and rotaryBackward; their arguments are checked in core (kernelChecks). */
export const rotaryKernels = {
  rotary(ctx, out, x, positions, p) {
    rotate(ctx, 'rotary', out as WebGpuBuffer, x as WebGpuBuffer, positions as WebGpuBuffer, p, 1);
  },
  rotaryBackward(ctx, dx, dy, positions, p) {
    rotate(ctx, 'rotaryBackward', dx as WebGpuBuffer, dy as WebGpuBuffer, positions as WebGpuBuffer, p, -1);
  },
} satisfies KernelFamily<Ctx>;

function rotate(ctx: Ctx, K: string, out: WebGpuBuffer, x: WebGpuBuffer, pos: WebGpuBuffer, p: RotaryParams, sign: 1 | -1): void {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  const n = batch * seq * heads * headDim;
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
      { name: 'out', buf: out, access: 'write' },
      { name: 'x', buf: x, access: 'read' },
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
