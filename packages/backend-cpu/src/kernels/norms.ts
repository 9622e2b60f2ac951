/**
 * LayerNorm and RMSNorm over the last dimension of x [rows, dim], with their backward passes.
 * Variance is biased (divides by dim) like PyTorch. Statistics are computed in double precision
 * and saved as float32; the forward output uses the saved (float32) mean and rstd so that the
 * backward differentiates exactly the function the forward computed.
 */
import type { DeviceBuffer, NormParams } from '@peft/core';
import { arg, type CpuContext, counts, finite } from '../buffer.js';
import { loadF32, outF32, storeF32 } from '../storage.js';

function checkParams(kernel: string, p: NormParams): void {
  counts(kernel, { rows: p.rows, dim: p.dim });
  finite(kernel, 'eps', p.eps);
  if (p.eps < 0) throw new Error(`${kernel}: eps must be non-negative, got ${p.eps}`);
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
  const xs = loadF32(arg(ctx, K, 'x', x, rows * dim, 'float'), 0, rows * dim);
  const w = weight === null ? null : loadF32(arg(ctx, K, 'weight', weight, dim, 'float'), 0, dim);
  const b = bias === null ? null : loadF32(arg(ctx, K, 'bias', bias, dim, 'float'), 0, dim);
  const ys = o === x ? new Float32Array(rows * dim) : outF32(o, rows * dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let sum = 0;
    for (let j = 0; j < dim; j++) sum += xs[base + j];
    const mu = sum / dim;
    let sq = 0;
    for (let j = 0; j < dim; j++) {
      const d = xs[base + j] - mu;
      sq += d * d;
    }
    meanOut[r] = mu;
    rstdOut[r] = 1 / Math.sqrt(sq / dim + eps);
    const m = meanOut[r];
    const s = rstdOut[r];
    for (let j = 0; j < dim; j++) {
      let y = (xs[base + j] - m) * s;
      if (w !== null) y *= w[j];
      if (b !== null) y += b[j];
      ys[base + j] = y;
    }
  }
  storeF32(o, ys);
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
  const g = loadF32(arg(ctx, K, 'dy', dy, rows * dim, 'float'), 0, rows * dim);
  const xs = loadF32(arg(ctx, K, 'x', x, rows * dim, 'float'), 0, rows * dim);
  const w = weight === null ? null : loadF32(arg(ctx, K, 'weight', weight, dim, 'float'), 0, dim);
  const mu = arg(ctx, K, 'mean', mean, rows, 'float32').data as Float32Array;
  const rs = arg(ctx, K, 'rstd', rstd, rows, 'float32').data as Float32Array;
  const dw = new Float64Array(dim);
  const db = new Float64Array(dim);
  const ds = o === dy || o === x ? new Float32Array(rows * dim) : outF32(o, rows * dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const m = mu[r];
    const s = rs[r];
    let sumG = 0;
    let sumGX = 0;
    for (let j = 0; j < dim; j++) {
      const xhat = (xs[base + j] - m) * s;
      const gj = w === null ? g[base + j] : g[base + j] * w[j];
      sumG += gj;
      sumGX += gj * xhat;
      dw[j] += g[base + j] * xhat;
      db[j] += g[base + j];
    }
    const meanG = sumG / dim;
    const meanGX = sumGX / dim;
    for (let j = 0; j < dim; j++) {
      const xhat = (xs[base + j] - m) * s;
      const gj = w === null ? g[base + j] : g[base + j] * w[j];
      ds[base + j] = s * (gj - meanG - xhat * meanGX);
    }
  }
  storeF32(o, ds);
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
  const xs = loadF32(arg(ctx, K, 'x', x, rows * dim, 'float'), 0, rows * dim);
  const w = weight === null ? null : loadF32(arg(ctx, K, 'weight', weight, dim, 'float'), 0, dim);
  const ys = o === x ? new Float32Array(rows * dim) : outF32(o, rows * dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += xs[base + j] * xs[base + j];
    rstdOut[r] = 1 / Math.sqrt(sq / dim + eps);
    const s = rstdOut[r];
    if (w === null) for (let j = 0; j < dim; j++) ys[base + j] = xs[base + j] * s;
    else for (let j = 0; j < dim; j++) ys[base + j] = xs[base + j] * s * w[j];
  }
  storeF32(o, ys);
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
  const g = loadF32(arg(ctx, K, 'dy', dy, rows * dim, 'float'), 0, rows * dim);
  const xs = loadF32(arg(ctx, K, 'x', x, rows * dim, 'float'), 0, rows * dim);
  const w = weight === null ? null : loadF32(arg(ctx, K, 'weight', weight, dim, 'float'), 0, dim);
  const rs = arg(ctx, K, 'rstd', rstd, rows, 'float32').data as Float32Array;
  const dw = new Float64Array(dim);
  const ds = o === dy || o === x ? new Float32Array(rows * dim) : outF32(o, rows * dim);
  for (let r = 0; r < rows; r++) {
    const base = r * dim;
    const s = rs[r];
    let sumGX = 0;
    for (let j = 0; j < dim; j++) {
      const xhat = xs[base + j] * s;
      const gj = w === null ? g[base + j] : g[base + j] * w[j];
      sumGX += gj * xhat;
      dw[j] += g[base + j] * xhat;
    }
    const meanGX = sumGX / dim;
    for (let j = 0; j < dim; j++) {
      const xhat = xs[base + j] * s;
      const gj = w === null ? g[base + j] : g[base + j] * w[j];
      ds[base + j] = s * (gj - xhat * meanGX);
    }
  }
  storeF32(o, ds);
  if (dwOut !== null) (dwOut.data as Float32Array).set(dw);
}
