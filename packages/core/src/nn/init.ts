import { noGrad } from '../autograd/tape.js';
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { rand, randn } from '../ops/random.js';
import { cast } from '../ops/shape.js';
import type { Generator } from '../random/generator.js';
import { type Tensor, zeros } from '../tensor.js';

export interface ParamOptions {
  backend: Backend;
  dtype?: DType;
  generator?: Generator;
}

function inDtype(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const c = noGrad(() => cast(t, dtype));
  t.dispose();
  return c;
}

/** U(−bound, bound), drawn in float32 and rounded to the dtype. */
export function uniformParam(shape: readonly number[], bound: number, opts: ParamOptions): Tensor {
  const t = rand(shape, { backend: opts.backend, generator: opts.generator, low: -bound, high: bound });
  const p = inDtype(t, opts.dtype ?? 'float32');
  p.requiresGrad = true;
  return p;
}

/** N(mean, std²), drawn in float32 and rounded to the dtype. */
export function normalParam(shape: readonly number[], std: number, opts: ParamOptions, mean = 0): Tensor {
  const t = randn(shape, { backend: opts.backend, generator: opts.generator, mean, std });
  const p = inDtype(t, opts.dtype ?? 'float32');
  p.requiresGrad = true;
  return p;
}

export function constantParam(shape: readonly number[], value: number, opts: ParamOptions): Tensor {
  const p = zeros(shape, { backend: opts.backend, dtype: opts.dtype ?? 'float32' });
  if (value !== 0 && p.size > 0) opts.backend.fill(p.buffer(), value);
  p.requiresGrad = true;
  return p;
}
