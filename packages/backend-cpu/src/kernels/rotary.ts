/**
 * Rotary position embedding, rotate-half layout (GPT-NeoX; Llama in transformers). For a head
 * vector x and i < half = rotaryDim/2, with θ_i = (position / positionScale) · base^(−2i/rotaryDim):
 *   out[i]        = x[i]·cos θ_i − x[i+half]·sin θ_i
 *   out[i + half] = x[i+half]·cos θ_i + x[i]·sin θ_i
 * Features from rotaryDim on pass through. Angles, cos and sin are computed in double precision,
 * once per distinct position and pair for each call. The backward is the rotation by −θ.
 */
import type { DeviceBuffer, KernelFamily, RotaryParams } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, flushF32, readF32, writeF32 } from '../storage.js';

/** rotary and rotaryBackward; their arguments are checked in core (kernelChecks). */
export const rotaryKernels = {
  rotary(_ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    rotate(out as CpuBuffer, x as CpuBuffer, positions as CpuBuffer, p, 1);
  },
  rotaryBackward(_ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    rotate(dx as CpuBuffer, dy as CpuBuffer, positions as CpuBuffer, p, -1);
  },
} satisfies KernelFamily<CpuContext>;

function rotate(o: CpuBuffer, xb: CpuBuffer, positions: CpuBuffer, p: RotaryParams, sign: 1 | -1): void {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  const pos = positions.data as Int32Array;
  const tokens = batch * seq;
  const half = rotaryDim / 2;
  const invFreq = new Float64Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = 1 / base ** ((2 * i) / rotaryDim);
  // cos/sin rows for positions lo..hi when that range is no longer than the tokens, else one row per token.
  let lo = 0;
  let hi = -1;
  for (let t = 0; t < tokens; t++) {
    const q = pos[t];
    if (t === 0 || q < lo) lo = q;
    if (t === 0 || q > hi) hi = q;
  }
  const byPosition = hi - lo + 1 <= tokens;
  const tableRows = byPosition ? hi - lo + 1 : tokens;
  const cos = new Float64Array(tableRows * half);
  const sin = new Float64Array(tableRows * half);
  for (let row = 0; row < tableRows; row++) {
    const scaled = (byPosition ? lo + row : pos[row]) / positionScale;
    for (let i = 0; i < half; i++) {
      const angle = scaled * invFreq[i];
      cos[row * half + i] = Math.cos(angle);
      sin[row * half + i] = sign * Math.sin(angle);
    }
  }
  const width = heads * headDim;
  // Each token's heads at once; in place is safe: each pair is read before it is written.
  for (let t = 0; t < tokens; t++) {
    const start = t * width;
    const xs = readF32(xb, start, width, 0);
    const ys = writeF32(o, width, 1);
    const xi = at(xb, start);
    const yi = at(o, start);
    const c0 = (byPosition ? pos[t] - lo : t) * half;
    for (let h = 0; h < heads; h++) {
      const xa = xi + h * headDim;
      const ya = yi + h * headDim;
      for (let i = 0; i < half; i++) {
        const a = xs[xa + i];
        const b = xs[xa + i + half];
        const c = cos[c0 + i];
        const sn = sin[c0 + i];
        ys[ya + i] = a * c - b * sn;
        ys[ya + i + half] = b * c + a * sn;
      }
      for (let i = rotaryDim; i < headDim; i++) ys[ya + i] = xs[xa + i];
    }
    flushF32(o, start, width, ys);
  }
}
