import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { rand, randn } from '../ops/random.js';
import type { Generator } from '../random/generator.js';
import { type Tensor, zeros } from '../tensor.js';

export interface ParamOptions {
  backend: Backend;
  dtype?: DType;
  generator?: Generator;
}

// The random kernels compute in float32 and round to the output's dtype, so drawing straight into
// the parameter's dtype gives what a float32 draw cast afterwards would, without the float32 copy.

/** U(−bound, bound), drawn in float32 and rounded to the dtype. */
export function uniformParam(shape: readonly number[], bound: number, opts: ParamOptions): Tensor {
  const p = rand(shape, { backend: opts.backend, dtype: opts.dtype ?? 'float32', generator: opts.generator, low: -bound, high: bound });
  p.requiresGrad = true;
  return p;
}

/** N(mean, std²), drawn in float32 and rounded to the dtype. */
export function normalParam(shape: readonly number[], std: number, opts: ParamOptions, mean = 0): Tensor {
  const p = randn(shape, { backend: opts.backend, dtype: opts.dtype ?? 'float32', generator: opts.generator, mean, std });
  p.requiresGrad = true;
  return p;
}

export function constantParam(shape: readonly number[], value: number, opts: ParamOptions): Tensor {
  const p = zeros(shape, { backend: opts.backend, dtype: opts.dtype ?? 'float32' });
  if (value !== 0 && p.size > 0) opts.backend.fill(p.buffer(), value);
  p.requiresGrad = true;
  return p;
}
