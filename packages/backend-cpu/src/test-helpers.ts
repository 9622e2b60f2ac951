/** Shared helpers for this package's tests (not exported from the package). */
import { type DeviceBuffer, type DType, decode, encode } from '@peft/core';
import { expect } from 'vitest';
import { type CpuBackend, createCpuBackend } from './backend.js';

export function backend(): CpuBackend {
  return createCpuBackend();
}

/** A buffer of `dtype` holding `values` (rounded to the dtype). */
export function upload(be: CpuBackend, values: ArrayLike<number>, dtype: DType = 'float32'): DeviceBuffer {
  const buf = be.alloc(dtype, values.length);
  be.write(buf, encode(values, dtype));
  return buf;
}

/** The values of a buffer: float32 for float dtypes, int32 for int32. */
export async function download(be: CpuBackend, buf: DeviceBuffer): Promise<number[]> {
  return Array.from(decode(await be.read(buf), buf.dtype));
}

export function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) {
      expect(a, `element ${i}`).toBeNaN();
      continue;
    }
    if (!Number.isFinite(e)) {
      expect(a, `element ${i}`).toBe(e);
      continue;
    }
    if (Math.abs(a - e) > tol * Math.max(1, Math.abs(e))) {
      throw new Error(`element ${i}: got ${a}, expected ${e} (tol ${tol}); actual [${Array.from(actual).join(', ')}]`);
    }
  }
}

/** Deterministic pseudo-random values in [-scale, scale) (a small LCG; tests only). */
export function randomValues(n: number, seed: number, scale = 1): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(((s / 4294967296) * 2 - 1) * scale);
  }
  return out;
}

/**
 * Central finite differences of L(x) = Σ w·f(x) for a scalar-weighted output: returns dL/dx[i]
 * for every i. `f` runs the forward kernel on float32 inputs and returns its output.
 */
export async function numericGrad(x: number[], eps: number, loss: (x: number[]) => Promise<number>): Promise<number[]> {
  const grad: number[] = [];
  for (let i = 0; i < x.length; i++) {
    const plus = x.slice();
    const minus = x.slice();
    plus[i] += eps;
    minus[i] -= eps;
    grad.push(((await loss(plus)) - (await loss(minus))) / (2 * eps));
  }
  return grad;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** Relative comparison of gradients: |a − e| ≤ tol · max(1, ‖e‖∞). */
export function expectGradClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-2): void {
  let scale = 1;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > tol * scale) {
      throw new Error(
        `gradient ${i}: got ${actual[i]}, finite differences give ${expected[i]}; analytic [${Array.from(actual).join(', ')}] numeric [${Array.from(expected).join(', ')}]`,
      );
    }
  }
}
