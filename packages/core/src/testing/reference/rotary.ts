/** The oracle's rotary position embedding (rotate-half) and its backward. */
import type { RotaryParams } from '../../backend.js';
import type { Values } from './views.js';

function rotate(x: Values, positions: Values, p: RotaryParams, sign: 1 | -1): Float64Array {
  const { batch, seq, heads, headDim, rotaryDim, base, positionScale } = p;
  const half = rotaryDim / 2;
  const out = Float64Array.from(x);
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < seq; s++) {
      const pos = positions[b * seq + s]!;
      for (let h = 0; h < heads; h++) {
        const row = ((b * seq + s) * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const angle = (pos / positionScale) * base ** ((-2 * i) / rotaryDim);
          const c = Math.cos(angle);
          const sn = sign * Math.sin(angle);
          const x1 = x[row + i]!;
          const x2 = x[row + i + half]!;
          out[row + i] = x1 * c - x2 * sn;
          out[row + i + half] = x2 * c + x1 * sn;
        }
      }
    }
  }
  return out;
}

/** Rotate-half: out[i] = x[i]·cos − x[i+half]·sin, out[i+half] = x[i+half]·cos + x[i]·sin; the rest copied. */
export function rotary(x: Values, positions: Values, p: RotaryParams): Float64Array {
  return rotate(x, positions, p, 1);
}

/** The transpose (= inverse) rotation: by −angle. */
export function rotaryBackward(dy: Values, positions: Values, p: RotaryParams): Float64Array {
  return rotate(dy, positions, p, -1);
}
