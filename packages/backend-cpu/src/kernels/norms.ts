/**
 * LayerNorm and RMSNorm over the last dimension of x [rows, dim], with their backward passes.
 * Variance is biased (divides by dim) like PyTorch. Statistics are computed in double precision
 * and saved as float32; the forward output uses the saved (float32) mean and rstd so that the
 * backward differentiates exactly the function the forward computed. Each row takes two passes:
 * statistics (sums in double precision), then the output.
 */
import type { DeviceBuffer, NormParams } from '@peft/core';
import { arg, type CpuBuffer, type CpuContext, counts, finite } from '../buffer.js';
import { at, flushF32, readF32, scratch, writeF32 } from '../storage.js';

function checkParams(kernel: string, p: NormParams): void {
  counts(kernel, { rows: p.rows, dim: p.dim });
  finite(kernel, 'eps', p.eps);
  if (p.eps < 0) throw new Error(`${kernel}: eps must be non-negative, got ${p.eps}`);
}

/** The weight as float32 (element j at index j), or ones when there is none (g·1 = g exactly). */
function weightOrOnes(weight: CpuBuffer | null, dim: number, slot: number): Float32Array {
  if (weight !== null) {
    const w = readF32(weight, 0, dim, slot);
    return w;
  }
  const ones = scratch(slot, dim);
  ones.fill(1, 0, dim);
  return ones;
}

/** y = (x − mean) · rstd · weight + bias, rstd = 1/√(var + eps). */
export function layerNorm(
  ctx: CpuContext,
  out: DeviceBuffer,
  mean: DeviceBuffer,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  bias: DeviceBuffer | null,
  p: NormParams,
): void {
  const K = 'layerNorm';
  checkParams(K, p);
  const { rows, dim, eps } = p;
  const o = arg(ctx, K, 'out', out, rows * dim, 'float');
  const meanOut = arg(ctx, K, 'mean', mean, rows, 'float32').data as Float32Array;
  const rstdOut = arg(ctx, K, 'rstd', rstd, rows, 'float32').data as Float32Array;
  const xb = arg(ctx, K, 'x', x, rows * dim, 'float');
  const w = weightOrOnes(weight === null ? null : arg(ctx, K, 'weight', weight, dim, 'float'), dim, 1);
  const b = bias === null ? null : readF32(arg(ctx, K, 'bias', bias, dim, 'float'), 0, dim, 2);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const xs = readF32(xb, base, dim, 0);
    const xi = at(xb, base);
    // Sums of (x − x₀) keep E[x²] − E[x]² free of cancellation when |mean| ≫ std.
    const shift = dim > 0 ? xs[xi] : 0;
    let s1 = 0;
    let s2 = 0;
    for (let j = 0; j < dim; j++) {
      const d = xs[xi + j] - shift;
      s1 += d;
      s2 += d * d;
    }
    const variance = Math.max(0, (s2 - (s1 * s1) / dim) / dim);
    meanOut[r] = shift + s1 / dim;
    rstdOut[r] = 1 / Math.sqrt(variance + eps);
    const m = meanOut[r];
    const s = rstdOut[r];
    const ys = writeF32(o, dim, 3);
    const yi = at(o, base);
    if (b === null) for (let j = 0; j < dim; j++) ys[yi + j] = (xs[xi + j] - m) * s * w[j];
    else for (let j = 0; j < dim; j++) ys[yi + j] = (xs[xi + j] - m) * s * w[j] + b[j];
    flushF32(o, base, dim, ys);
  }
}

/**
 * With x̂ = (x − mean)·rstd and g = dy·weight: dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)),
 * dWeight = Σ_rows dy·x̂, dBias = Σ_rows dy.
 */
export function layerNormBackward(
  ctx: CpuContext,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dBias: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  mean: DeviceBuffer,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  const K = 'layerNormBackward';
  checkParams(K, p);
  const { rows, dim } = p;
  const o = arg(ctx, K, 'dx', dx, rows * dim, 'float');
  const dwOut = dWeight === null ? null : arg(ctx, K, 'dWeight', dWeight, dim, 'float32');
  const dbOut = dBias === null ? null : arg(ctx, K, 'dBias', dBias, dim, 'float32');
  const gb = arg(ctx, K, 'dy', dy, rows * dim, 'float');
  const xb = arg(ctx, K, 'x', x, rows * dim, 'float');
  const w = weightOrOnes(weight === null ? null : arg(ctx, K, 'weight', weight, dim, 'float'), dim, 2);
  const mu = arg(ctx, K, 'mean', mean, rows, 'float32').data as Float32Array;
  const rs = arg(ctx, K, 'rstd', rstd, rows, 'float32').data as Float32Array;
  const params = dwOut !== null || dbOut !== null;
  const dw = new Float64Array(params ? dim : 0);
  const db = new Float64Array(params ? dim : 0);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const g = readF32(gb, base, dim, 0);
    const xs = readF32(xb, base, dim, 1);
    const gi = at(gb, base);
    const xi = at(xb, base);
    const m = mu[r];
    const s = rs[r];
    let sumG = 0;
    let sumGX = 0;
    if (params) {
      for (let j = 0; j < dim; j++) {
        const xhat = (xs[xi + j] - m) * s;
        const dyj = g[gi + j];
        const gj = dyj * w[j];
        sumG += gj;
        sumGX += gj * xhat;
        dw[j] += dyj * xhat;
        db[j] += dyj;
      }
    } else {
      for (let j = 0; j < dim; j++) {
        const gj = g[gi + j] * w[j];
        sumG += gj;
        sumGX += gj * ((xs[xi + j] - m) * s);
      }
    }
    const meanG = sumG / dim;
    const meanGX = sumGX / dim;
    const ds = writeF32(o, dim, 3);
    const di = at(o, base);
    for (let j = 0; j < dim; j++) {
      const xhat = (xs[xi + j] - m) * s;
      ds[di + j] = s * (g[gi + j] * w[j] - meanG - xhat * meanGX);
    }
    flushF32(o, base, dim, ds);
  }
  if (dwOut !== null) (dwOut.data as Float32Array).set(dw);
  if (dbOut !== null) (dbOut.data as Float32Array).set(db);
}

/** y = x · rstd · weight, rstd = 1/√(mean(x²) + eps). */
export function rmsNorm(
  ctx: CpuContext,
  out: DeviceBuffer,
  rstd: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  p: NormParams,
): void {
  const K = 'rmsNorm';
  checkParams(K, p);
  const { rows, dim, eps } = p;
  const o = arg(ctx, K, 'out', out, rows * dim, 'float');
  const rstdOut = arg(ctx, K, 'rstd', rstd, rows, 'float32').data as Float32Array;
  const xb = arg(ctx, K, 'x', x, rows * dim, 'float');
  const w = weightOrOnes(weight === null ? null : arg(ctx, K, 'weight', weight, dim, 'float'), dim, 1);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const xs = readF32(xb, base, dim, 0);
    const xi = at(xb, base);
    let sq = 0;
    for (let j = 0; j < dim; j++) {
      const v = xs[xi + j];
      sq += v * v;
    }
    rstdOut[r] = 1 / Math.sqrt(sq / dim + eps);
    const s = rstdOut[r];
    const ys = writeF32(o, dim, 3);
    const yi = at(o, base);
    for (let j = 0; j < dim; j++) ys[yi + j] = xs[xi + j] * s * w[j];
    flushF32(o, base, dim, ys);
  }
}

/** With x̂ = x·rstd and g = dy·weight: dx = rstd · (g − x̂ · mean(g·x̂)), dWeight = Σ_rows dy·x̂. */
export function rmsNormBackward(
  ctx: CpuContext,
  dx: DeviceBuffer,
  dWeight: DeviceBuffer | null,
  dy: DeviceBuffer,
  x: DeviceBuffer,
  weight: DeviceBuffer | null,
  rstd: DeviceBuffer,
  p: NormParams,
): void {
  const K = 'rmsNormBackward';
  checkParams(K, p);
  const { rows, dim } = p;
  const o = arg(ctx, K, 'dx', dx, rows * dim, 'float');
  const dwOut = dWeight === null ? null : arg(ctx, K, 'dWeight', dWeight, dim, 'float32');
  const gb = arg(ctx, K, 'dy', dy, rows * dim, 'float');
  const xb = arg(ctx, K, 'x', x, rows * dim, 'float');
  const w = weightOrOnes(weight === null ? null : arg(ctx, K, 'weight', weight, dim, 'float'), dim, 2);
  const rs = arg(ctx, K, 'rstd', rstd, rows, 'float32').data as Float32Array;
  const dw = new Float64Array(dwOut === null ? 0 : dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const g = readF32(gb, base, dim, 0);
    const xs = readF32(xb, base, dim, 1);
    const gi = at(gb, base);
    const xi = at(xb, base);
    const s = rs[r];
    let sumGX = 0;
    if (dwOut !== null) {
      for (let j = 0; j < dim; j++) {
        const xhat = xs[xi + j] * s;
        const dyj = g[gi + j];
        sumGX += dyj * w[j] * xhat;
        dw[j] += dyj * xhat;
      }
    } else {
      for (let j = 0; j < dim; j++) sumGX += g[gi + j] * w[j] * (xs[xi + j] * s);
    }
    const meanGX = sumGX / dim;
    const ds = writeF32(o, dim, 3);
    const di = at(o, base);
    for (let j = 0; j < dim; j++) ds[di + j] = s * (g[gi + j] * w[j] - xs[xi + j] * s * meanGX);
    flushF32(o, base, dim, ds);
  }
  if (dwOut !== null) (dwOut.data as Float32Array).set(dw);
}
