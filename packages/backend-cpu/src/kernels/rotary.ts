/**
 * Rotary position embedding, rotate-half layout (GPT-NeoX; Llama in transformers). For a head
 * vector x and i < half = rotaryDim/2, with θ_i = (position / positionScale) · base^(−2i/rotaryDim):
 *   out[i]        = x[i]·cos θ_i − x[i+half]·sin θ_i
 *   out[i + half] = x[i+half]·cos θ_i + x[i]·sin θ_i
 * Features from rotaryDim on pass through. Angles, cos and sin are computed in double precision,
 * once per distinct position and pair for each call. The backward is the rotation by −θ.
 *
 * float32 in and out run as a row kernel over tokens (../rows.ts), on the backend's worker
 * threads when it has them; the tables are computed here first, so every thread reads the same
 * cos and sin bits. Other dtypes decode and round one token at a time.
 */
import type { DeviceBuffer, KernelFamily, RotaryParams } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { forRows } from '../rows.js';
import { at, flushF32, readF32, writeF32 } from '../storage.js';

/** rotary and rotaryBackward; their arguments are checked in core (kernelChecks). */
export const rotaryKernels = {
  rotary(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    rotate(ctx, out as CpuBuffer, x as CpuBuffer, positions as CpuBuffer, p, 1);
  },
  rotaryBackward(ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, positions: DeviceBuffer, p: RotaryParams): void {
    rotate(ctx, dx as CpuBuffer, dy as CpuBuffer, positions as CpuBuffer, p, -1);
  },
} satisfies KernelFamily<CpuContext>;

/** Tables longer than this go to shared memory when the backend has worker threads (rows.ts copies only smaller inputs). */
const MAX_COPIED_TABLE = 64 * 1024;

function rotate(ctx: CpuContext, o: CpuBuffer, xb: CpuBuffer, positions: CpuBuffer, p: RotaryParams, sign: 1 | -1): void {
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
  const n = tableRows * half;
  const shared = ctx.pool !== null && n > MAX_COPIED_TABLE;
  const cos = shared ? new Float64Array(new SharedArrayBuffer(8 * n)) : new Float64Array(n);
  const sin = shared ? new Float64Array(new SharedArrayBuffer(8 * n)) : new Float64Array(n);
  for (let row = 0; row < tableRows; row++) {
    const scaled = (byPosition ? lo + row : pos[row]) / positionScale;
    for (let i = 0; i < half; i++) {
      const angle = scaled * invFreq[i];
      cos[row * half + i] = Math.cos(angle);
      sin[row * half + i] = sign * Math.sin(angle);
    }
  }
  const width = heads * headDim;
  if (o.dtype === 'float32' && xb.dtype === 'float32') {
    const x = xb.data as Float32Array;
    const y = o.data as Float32Array;
    // The pass-through features move as float64 words (two features each) when both arrays allow it.
    const wide = headDim % 2 === 0 && x.byteOffset % 8 === 0 && y.byteOffset % 8 === 0;
    const x64 = wide ? new Float64Array(x.buffer, x.byteOffset, x.length >>> 1) : null;
    const y64 = wide ? new Float64Array(y.buffer, y.byteOffset, y.length >>> 1) : null;
    const args = [x, y, x64, y64, pos, cos, sin, heads, headDim, half, byPosition, lo, o === xb];
    forRows(ctx, rotaryRows, tokens, tokens * width, args, [1, 3]);
    return;
  }
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

/**
 * Row kernel over tokens [t0, t1): y = the rotation of x by the tables (row `pos[t] − lo` of cos
 * and sin when `byPosition`, else row t), features from 2·half on copied (nothing to do in
 * place): as float64 words through x64 / y64 (views of x and y, null when headDim is odd), which
 * move two features per access and any bits unchanged. The same float32 arithmetic as the 16-bit
 * path in rotate(): products and sums in double, one rounding at the store. A pair is read
 * before it is written, so y may be x.
 */
export function rotaryRows(
  x: Float32Array,
  y: Float32Array,
  x64: Float64Array | null,
  y64: Float64Array | null,
  pos: Int32Array,
  cos: Float64Array,
  sin: Float64Array,
  heads: number,
  headDim: number,
  half: number,
  byPosition: boolean,
  lo: number,
  inPlace: boolean,
  t0: number,
  t1: number,
): void {
  const width = heads * headDim;
  const rotaryDim = 2 * half;
  for (let t = t0; t < t1; t++) {
    const c0 = (byPosition ? pos[t] - lo : t) * half;
    for (let h = 0, a = t * width; h < heads; h++, a += headDim) {
      for (let i = 0; i < half; i++) {
        const u = x[a + i];
        const v = x[a + i + half];
        const c = cos[c0 + i];
        const sn = sin[c0 + i];
        y[a + i] = u * c - v * sn;
        y[a + i + half] = v * c + u * sn;
      }
      if (inPlace || rotaryDim === headDim) continue;
      if (x64 !== null && y64 !== null) {
        const e = (a + headDim) / 2;
        let i = (a + rotaryDim) / 2;
        for (; i + 4 <= e; i += 4) {
          y64[i] = x64[i];
          y64[i + 1] = x64[i + 1];
          y64[i + 2] = x64[i + 2];
          y64[i + 3] = x64[i + 3];
        }
        for (; i < e; i++) y64[i] = x64[i];
      } else {
        for (let i = rotaryDim; i < headDim; i++) y[a + i] = x[a + i];
      }
    }
  }
}
