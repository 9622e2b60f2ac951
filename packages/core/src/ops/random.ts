import { needsGrad, record } from '../autograd/tape.js';
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, requireFloat } from './util.js';

export interface RandomOptions {
  backend: Backend;
  dtype?: DType;
  generator?: Generator;
}

/** Uniform numbers in [low, high) from the counter-based generator: the same on every backend. */
export function rand(shape: readonly number[], opts: RandomOptions & { low?: number; high?: number }): Tensor {
  const gen = opts.generator ?? defaultGenerator;
  const y = alloc(opts.backend, shape, opts.dtype ?? 'float32', 'rand');
  const offset = gen.next(y.size);
  if (y.size > 0)
    opts.backend.random(y.buffer(), { seed: gen.seed, offset, distribution: 'uniform', low: opts.low ?? 0, high: opts.high ?? 1 });
  return y;
}

/** Normal numbers with the given mean and standard deviation. */
export function randn(shape: readonly number[], opts: RandomOptions & { mean?: number; std?: number }): Tensor {
  const gen = opts.generator ?? defaultGenerator;
  const y = alloc(opts.backend, shape, opts.dtype ?? 'float32', 'randn');
  const offset = gen.next(y.size);
  if (y.size > 0)
    opts.backend.random(y.buffer(), { seed: gen.seed, offset, distribution: 'normal', low: opts.mean ?? 0, high: opts.std ?? 1 });
  return y;
}

/** Zeroes each element with probability p and scales the rest by 1/(1−p). The mask is regenerated in backward. */
export function dropout(x: Tensor, p: number, generator: Generator = defaultGenerator): Tensor {
  const op = 'dropout';
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  if (!(p >= 0 && p <= 1)) throw new Error(`${op}: probability ${p} must be in [0, 1]`);
  const params = { p, seed: generator.seed, offset: generator.next(x.size) };
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) backend.dropout(y.buffer(), x.buffer(op), params);
  if (needsGrad([x])) {
    record(op, [x], [y], [], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      if (dx.size > 0) backend.dropoutBackward(dx.buffer(), g!.buffer(op), params);
      return [dx];
    });
  }
  return y;
}
