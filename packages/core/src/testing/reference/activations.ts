/** The oracle's GELU (exact and tanh) and SiLU-gated multiply, with their backwards. */
import { unaryScalar } from './elementwise.js';
import type { Values } from './views.js';

/** erf to float64 accuracy: (2/√π)·e^(−x²)·Σ x·(2x²)ⁿ/(2n+1)!!, a series of positive terms. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax > 6) return Math.sign(x);
  let term = ax;
  let sum = ax;
  for (let n = 1; n < 500 && term > sum * 1e-17; n++) {
    term *= (2 * ax * ax) / (2 * n + 1);
    sum += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
}

const GELU_C = Math.sqrt(2 / Math.PI);

export function geluScalar(x: number, approximate: boolean): number {
  if (approximate) return 0.5 * x * (1 + Math.tanh(GELU_C * (x + 0.044715 * x ** 3)));
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

export function gelu(x: Values, approximate: boolean): Float64Array {
  return Float64Array.from(x, (v) => geluScalar(v, approximate));
}

export function geluBackward(dy: Values, x: Values, approximate: boolean): Float64Array {
  return Float64Array.from(x, (v, i) => {
    let d: number;
    if (approximate) {
      const t = Math.tanh(GELU_C * (v + 0.044715 * v ** 3));
      d = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * v * v);
    } else {
      d = 0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI);
    }
    return dy[i]! * d;
  });
}

export function siluMul(gate: Values, up: Values): Float64Array {
  return Float64Array.from(gate, (g, i) => unaryScalar('silu', g) * up[i]!);
}

export function siluMulBackward(dy: Values, gate: Values, up: Values): { dGate: Float64Array; dUp: Float64Array } {
  const dGate = Float64Array.from(gate, (g, i) => {
    const s = unaryScalar('sigmoid', g);
    return dy[i]! * up[i]! * s * (1 + g * (1 - s));
  });
  const dUp = Float64Array.from(gate, (g, i) => dy[i]! * unaryScalar('silu', g));
  return { dGate, dUp };
}
