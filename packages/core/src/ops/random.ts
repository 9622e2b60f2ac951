import { needsGrad, record } from '../autograd/tape.js';
import type { Backend, DeviceBuffer, DropoutParams } from '../backend.js';
import type { DType } from '../dtype.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import { philox4x32, philoxBlocks, splitKey } from '../random/philox.js';
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

/**
 * Philox counters each example's row owns in `exampleDropout`: row `key` starts at counter
 * key · 2²⁶, so rows of up to 2²⁸ elements never share one, and keys below 2²⁷ keep every counter
 * under 2⁵³ (the largest offset a Generator or kernel takes).
 */
export const EXAMPLE_ROW_COUNTERS = 2 ** 26;
/** One more than the largest example key `exampleDropout` takes. */
export const EXAMPLE_KEY_LIMIT = 2 ** 27;

/** Which masks `exampleDropout` draws: the run's seed, the optimizer step, the dropout call, and each row's example. */
export interface ExampleMasks {
  /** The run's seed (a Generator's seed). */
  seed: number;
  /** The optimizer step (updates completed before this one). */
  step: number;
  /** Which dropout call of the forward pass (its module's index in the model). */
  stream: number;
  /** Each row's example key (its dataset index), one per slice along axis 0. */
  keys: readonly number[];
}

const TWO32 = 2 ** 32;
/** Lane 3 of the counter that derives a step's key ("drop"): never 0, so never a counter of a Generator's own stream. */
const STREAM_DOMAIN = 0x64726f70;

/**
 * The Philox key of one (seed, step, stream): Philox4x32-10 of the counter (step, stream, "drop")
 * under the run's key, its first 53 bits. A function of those three values only.
 */
export function exampleStreamSeed(seed: number, step: number, stream: number): number {
  if (!Number.isSafeInteger(step) || step < 0) throw new Error(`exampleDropout: step ${step} must be a non-negative integer`);
  if (!Number.isInteger(stream) || stream < 0 || stream >= TWO32)
    throw new Error(`exampleDropout: stream ${stream} must be an integer in [0, 2^32)`);
  const [k0, k1] = splitKey(seed);
  const out = new Uint32Array(4);
  philox4x32(step % TWO32, Math.floor(step / TWO32), stream, STREAM_DOMAIN, k0, k1, out);
  return out[0]! + (out[1]! & 0x1fffff) * TWO32;
}

/**
 * Dropout whose mask does not depend on how examples are batched: row b (the b-th slice along
 * axis 0, or the b-th group of x.shape[0] / keys.length slices when positions are flattened into
 * axis 0) draws from the stream (exampleStreamSeed(seed, step, stream), keys[b] · 2²⁶), so element
 * (position s, feature f) of an example gets the same mask in any batch, any micro-batch, on any
 * rank, and whatever the padded length (right padding keeps positions in place). Each row runs the
 * dropout kernel on its own; the mask is regenerated in backward.
 */
export function exampleDropout(x: Tensor, p: number, masks: ExampleMasks): Tensor {
  const op = 'exampleDropout';
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  if (!(p >= 0 && p <= 1)) throw new Error(`${op}: probability ${p} must be in [0, 1]`);
  const rows = masks.keys.length;
  if (rows === 0 || x.rank === 0 || x.shape[0]! % rows !== 0) {
    throw new Error(`${op}: ${x.describe()} cannot be split into ${rows} example rows along axis 0: give one key per example of the batch`);
  }
  for (const [b, key] of masks.keys.entries()) {
    if (!Number.isInteger(key) || key < 0 || key >= EXAMPLE_KEY_LIMIT)
      throw new Error(`${op}: example key ${key} (row ${b}) must be an integer in [0, 2^27)`);
  }
  const rowSize = x.size / rows;
  if (philoxBlocks(rowSize) > EXAMPLE_ROW_COUNTERS)
    throw new Error(`${op}: a row of ${rowSize} elements (${x.describe()}) is more than the 2^28 one example's stream holds`);
  const seed = exampleStreamSeed(masks.seed, masks.step, masks.stream);
  const params = masks.keys.map((key) => ({ p, seed, offset: key * EXAMPLE_ROW_COUNTERS }));
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) byRows(backend, y, x, params, (out, input, q) => backend.dropout(out, input, q));
  if (needsGrad([x])) {
    record(op, [x], [y], [], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      if (dx.size > 0) byRows(backend, dx, g!, params, (out, input, q) => backend.dropoutBackward(out, input, q));
      return [dx];
    });
  }
  return y;
}

/** Runs a dropout kernel on each row of `input` into the same row of `out`, each with its own params. */
function byRows(
  backend: Backend,
  out: Tensor,
  input: Tensor,
  params: readonly DropoutParams[],
  kernel: (out: DeviceBuffer, input: DeviceBuffer, params: DropoutParams) => void,
): void {
  const op = 'exampleDropout';
  if (params.length === 1) {
    kernel(out.buffer(), input.buffer(op), params[0]!);
    return;
  }
  const n = out.size / params.length;
  const rowIn = alloc(backend, [n], input.dtype, op);
  const rowOut = alloc(backend, [n], out.dtype, op);
  try {
    backend.fill(out.buffer(), 0);
    params.forEach((q, b) => {
      const view = { shape: [n], strides: [1], offset: b * n };
      backend.copy(rowIn.buffer(), input.buffer(op), view);
      kernel(rowOut.buffer(), rowIn.buffer(), q);
      backend.addInto(out.buffer(), rowOut.buffer(), view);
    });
  } finally {
    rowIn.dispose();
    rowOut.dispose();
  }
}
