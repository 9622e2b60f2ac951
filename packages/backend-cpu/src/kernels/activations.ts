/**
 * GELU (exact and tanh approximation) and SwiGLU's silu(gate)·up, with their backward passes.
 * Computed in double precision; erf is accurate to about 1e-15.
 */
import type { DeviceBuffer } from '@peft/core';
import { arg, type CpuContext, same } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TANH_C = Math.sqrt(2 / Math.PI);
const TANH_A = 0.044715;

/**
 * Error function. |x| < 3: erf(x) = 2/√π · e^(−x²) · Σ_n 2ⁿ x^(2n+1) / (1·3·…·(2n+1)), whose terms
 * are all positive (no cancellation). |x| ≥ 3: erf = 1 − erfc with erfc from its continued fraction.
 */
export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const ax = Math.abs(x);
  if (ax >= 3) {
    const r = 1 - erfcLarge(ax);
    return x < 0 ? -r : r;
  }
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (Math.abs(term) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x2) * sum;
}

/** erfc(x) for x ≥ 3: e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), by modified Lentz. */
function erfcLarge(x: number): number {
  if (x > 27) return 0;
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let n = 1; n < 500; n++) {
    const a = n / 2;
    d = x + a * d;
    d = d === 0 ? tiny : d;
    c = x + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / (Math.sqrt(Math.PI) * f);
}

/** 1 + erf(x), accurate also when x is very negative (then it is erfc(−x)). */
function onePlusErf(x: number): number {
  return x <= -3 ? erfcLarge(-x) : 1 + erf(x);
}

/** exact: y = x·Φ(x) = 0.5·x·(1 + erf(x/√2)); approximate: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export function gelu(ctx: CpuContext, out: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = arg(ctx, 'gelu', 'out', out, 0, 'float');
  const n = o.size;
  const xs = loadF32(same(ctx, 'gelu', 'x', x, n, 'float'), 0, n);
  const ys = outF32(o, n);
  if (approximate) {
    for (let i = 0; i < n; i++) {
      const v = xs[i];
      ys[i] = 0.5 * v * (1 + Math.tanh(TANH_C * (v + TANH_A * v * v * v)));
    }
  } else {
    for (let i = 0; i < n; i++) ys[i] = 0.5 * xs[i] * onePlusErf(xs[i] * SQRT1_2);
  }
  storeF32(o, ys);
}

/** exact: y' = Φ(x) + x·φ(x); approximate: y' = 0.5·(1 + t) + 0.5·x·(1 − t²)·√(2/π)·(1 + 3·0.044715·x²). */
export function geluBackward(ctx: CpuContext, dx: DeviceBuffer, dy: DeviceBuffer, x: DeviceBuffer, approximate: boolean): void {
  const o = arg(ctx, 'geluBackward', 'dx', dx, 0, 'float');
  const n = o.size;
  const g = loadF32(same(ctx, 'geluBackward', 'dy', dy, n, 'float'), 0, n);
  const xs = loadF32(same(ctx, 'geluBackward', 'x', x, n, 'float'), 0, n);
  const ds = outF32(o, n);
  if (approximate) {
    for (let i = 0; i < n; i++) {
      const v = xs[i];
      const t = Math.tanh(TANH_C * (v + TANH_A * v * v * v));
      ds[i] = g[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * TANH_C * (1 + 3 * TANH_A * v * v));
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = xs[i];
      ds[i] = g[i] * (0.5 * onePlusErf(v * SQRT1_2) + v * INV_SQRT_2PI * Math.exp(-0.5 * v * v));
    }
  }
  storeF32(o, ds);
}

/** out = silu(gate) · up, silu(x) = x·sigmoid(x). */
export function siluMul(ctx: CpuContext, out: DeviceBuffer, gate: DeviceBuffer, up: DeviceBuffer): void {
  const o = arg(ctx, 'siluMul', 'out', out, 0, 'float');
  const n = o.size;
  const gs = loadF32(same(ctx, 'siluMul', 'gate', gate, n, 'float'), 0, n);
  const us = loadF32(same(ctx, 'siluMul', 'up', up, n, 'float'), 0, n);
  const ys = outF32(o, n);
  for (let i = 0; i < n; i++) ys[i] = (gs[i] / (1 + Math.exp(-gs[i]))) * us[i];
  storeF32(o, ys);
}

/** dUp = dy · silu(gate); dGate = dy · up · s·(1 + gate·(1 − s)) with s = sigmoid(gate). */
export function siluMulBackward(
  ctx: CpuContext,
  dGate: DeviceBuffer,
  dUp: DeviceBuffer,
  dy: DeviceBuffer,
  gate: DeviceBuffer,
  up: DeviceBuffer,
): void {
  const K = 'siluMulBackward';
  const dgb = arg(ctx, K, 'dGate', dGate, 0, 'float');
  const n = dgb.size;
  const dub = same(ctx, K, 'dUp', dUp, n, 'float');
  if (dgb === dub) throw new Error(`${K}: dGate and dUp must be different buffers`);
  const g = loadF32(same(ctx, K, 'dy', dy, n, 'float'), 0, n);
  const gs = loadF32(same(ctx, K, 'gate', gate, n, 'float'), 0, n);
  const us = loadF32(same(ctx, K, 'up', up, n, 'float'), 0, n);
  // Outputs may alias inputs (e.g. dGate = gate), so compute into scratch first.
  const dG = new Float32Array(n);
  const dU = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const s = 1 / (1 + Math.exp(-gs[i]));
    dU[i] = g[i] * gs[i] * s;
    dG[i] = g[i] * us[i] * s * (1 + gs[i] * (1 - s));
  }
  storeF32(dgb, dG);
  storeF32(dub, dU);
}
