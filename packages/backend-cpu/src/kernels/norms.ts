/**
 * LayerNorm and RMSNorm over the last dimension of x [rows, dim], with their backward passes.
 * Variance is biased (divides by dim) like PyTorch. Statistics are computed in double precision
 * and saved as float32; the forward output uses the saved (float32) mean and rstd so that the
 * backward differentiates exactly the function the forward computed. Each row takes two passes:
 * statistics (sums in double precision), then the output.
 */
import type { DeviceBuffer, KernelFamily, KernelImpl } from '@peft/core';
import type { CpuBuffer, CpuContext } from '../buffer.js';
import { at, flushF32, readF32, scratch, writeF32 } from '../storage.js';

/** The weight as float32 (element j at index j), or ones when there is none (g·1 = g exactly). */
function weightOrOnes(weight: DeviceBuffer | null, dim: number, slot: number): Float32Array {
  if (weight !== null) return readF32(weight as CpuBuffer, 0, dim, slot);
  const ones = scratch(slot, dim);
  ones.fill(1, 0, dim);
  return ones;
}

/** y = (x − mean) · rstd · weight + bias, rstd = 1/√(var + eps). */
const layerNorm: KernelImpl<CpuContext, 'layerNorm'> = (_ctx, out, mean, rstd, x, weight, bias, p) => {
  const { rows, dim, eps } = p;
  const o = out as CpuBuffer;
  const meanOut = (mean as CpuBuffer).data as Float32Array;
  const rstdOut = (rstd as CpuBuffer).data as Float32Array;
  const xb = x as CpuBuffer;
  const w = weightOrOnes(weight, dim, 1);
  const b = bias === null ? null : readF32(bias as CpuBuffer, 0, dim, 2);
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
};

/**
 * With x̂ = (x − mean)·rstd and g = dy·weight: dx = rstd · (g − mean(g) − x̂ · mean(g·x̂)),
 * dWeight = Σ_rows dy·x̂, dBias = Σ_rows dy.
 */
const layerNormBackward: KernelImpl<CpuContext, 'layerNormBackward'> = (_ctx, dx, dWeight, dBias, dy, x, weight, mean, rstd, p) => {
  const { rows, dim } = p;
  const o = dx as CpuBuffer;
  const dwOut = dWeight as CpuBuffer | null;
  const dbOut = dBias as CpuBuffer | null;
  const gb = dy as CpuBuffer;
  const xb = x as CpuBuffer;
  const w = weightOrOnes(weight, dim, 2);
  const mu = (mean as CpuBuffer).data as Float32Array;
  const rs = (rstd as CpuBuffer).data as Float32Array;
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
};

/** y = x · rstd · weight, rstd = 1/√(mean(x²) + eps). */
const rmsNorm: KernelImpl<CpuContext, 'rmsNorm'> = (_ctx, out, rstd, x, weight, p) => {
  const { rows, dim, eps } = p;
  const o = out as CpuBuffer;
  const rstdOut = (rstd as CpuBuffer).data as Float32Array;
  const xb = x as CpuBuffer;
  const w = weightOrOnes(weight, dim, 1);
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
};

/** With x̂ = x·rstd and g = dy·weight: dx = rstd · (g − x̂ · mean(g·x̂)), dWeight = Σ_rows dy·x̂. */
const rmsNormBackward: KernelImpl<CpuContext, 'rmsNormBackward'> = (_ctx, dx, dWeight, dy, x, weight, rstd, p) => {
  const { rows, dim } = p;
  const o = dx as CpuBuffer;
  const dwOut = dWeight as CpuBuffer | null;
  const gb = dy as CpuBuffer;
  const xb = x as CpuBuffer;
  const w = weightOrOnes(weight, dim, 2);
  const rs = (rstd as CpuBuffer).data as Float32Array;
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
};

/** The norm kernels; their arguments are checked in core (kernelChecks). */
export const normKernels = { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } satisfies KernelFamily<CpuContext>;
