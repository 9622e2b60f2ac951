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
 * Philox counters each example owns in `exampleDropout`: example `key` starts at counter
 * key · 2²⁶, so examples of up to 2²⁸ elements never share one, and keys below 2²⁷ keep every
 * counter under 2⁵³ (the largest offset a Generator or kernel takes).
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
  /**
   * The example key (e.g. dataset index) of each example, in order: the tensor's rows (its
   * vectors along the last axis) split evenly over them, at positions 0, 1, … With `positions`:
   * the key of each row.
   */
  keys: readonly number[];
  /** Each row's position in its example, for rows gathered from several examples (one key per row then). */
  positions?: readonly number[];
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

/** Consecutive rows that one kernel call covers: rows [row, row + count) of example `key` from position `position`. */
interface Run {
  row: number;
  count: number;
  key: number;
  position: number;
}

/**
 * Dropout whose mask does not depend on how examples are batched. The vector at position s of
 * example `key` (a row: the last axis, F features) draws from the Philox stream
 * (exampleStreamSeed(seed, step, stream), key · 2²⁶ + s · ⌈F/4⌉), so an example's mask is the same
 * in any batch, micro-batch or process, whatever the padded length (right padding keeps positions
 * in place) and whether positions are flattened into the batch axis or gathered (`positions`).
 * Rows of one example at consecutive positions share a kernel call when F is a multiple of 4; the
 * mask is regenerated in backward.
 */
export function exampleDropout(x: Tensor, p: number, masks: ExampleMasks): Tensor {
  const op = 'exampleDropout';
  const backend = backendOf(op, [x]);
  requireFloat(op, x);
  if (!(p >= 0 && p <= 1)) throw new Error(`${op}: probability ${p} must be in [0, 1]`);
  const runs = rowRuns(x, masks);
  const seed = exampleStreamSeed(masks.seed, masks.step, masks.stream);
  const features = x.shape[x.rank - 1]!;
  const params = runs.map((r) => ({ p, seed, offset: r.key * EXAMPLE_ROW_COUNTERS + r.position * philoxBlocks(features) }));
  const y = alloc(backend, x.shape, x.dtype, op);
  if (y.size > 0) byRuns(backend, y, x, runs, features, params, (out, input, q) => backend.dropout(out, input, q));
  if (needsGrad([x])) {
    record(op, [x], [y], [], ([g]) => {
      const dx = alloc(backend, x.shape, g!.dtype, op);
      if (dx.size > 0) byRuns(backend, dx, g!, runs, features, params, (out, input, q) => backend.dropoutBackward(out, input, q));
      return [dx];
    });
  }
  return y;
}

/** Each row's example and position from `masks`, merged into runs of consecutive positions (checked against x). */
function rowRuns(x: Tensor, masks: ExampleMasks): Run[] {
  const op = 'exampleDropout';
  const features = x.rank === 0 ? 0 : x.shape[x.rank - 1]!;
  const rows = features === 0 ? 0 : x.size / features;
  const { keys, positions } = masks;
  const perRow = positions !== undefined;
  if (keys.length === 0 || (perRow ? keys.length !== rows || positions.length !== rows : rows % keys.length !== 0)) {
    const given = perRow ? `${keys.length} keys and ${positions.length} positions` : `${keys.length} example keys`;
    throw new Error(
      `${op}: ${x.describe()} has ${rows} rows of ${features} features, which ${given} do not fit: give one key per example (rows split evenly), or a key and a position per row`,
    );
  }
  const length = perRow ? 0 : rows / keys.length;
  const blocks = philoxBlocks(features);
  const contiguous = features % 4 === 0;
  const runs: Run[] = [];
  for (let row = 0; row < rows; row++) {
    const b = perRow ? row : Math.floor(row / length);
    const key = keys[b]!;
    const position = perRow ? positions[row]! : row % length;
    if (row === 0 || b !== (perRow ? row - 1 : Math.floor((row - 1) / length))) {
      if (!Number.isInteger(key) || key < 0 || key >= EXAMPLE_KEY_LIMIT)
        throw new Error(`${op}: example key ${key} (${perRow ? 'row' : 'example'} ${b}) must be an integer in [0, 2^27)`);
    }
    if (!Number.isInteger(position) || position < 0 || (position + 1) * blocks > EXAMPLE_ROW_COUNTERS)
      throw new Error(
        `${op}: position ${position} (row ${row}) of ${features} features is outside the 2^28 elements one example's stream holds`,
      );
    const last = runs.at(-1);
    if (contiguous && last && last.key === key && last.position + last.count === position) last.count++;
    else runs.push({ row, count: 1, key, position });
  }
  return runs;
}

/** Runs a dropout kernel on each run of rows of `input` into the same rows of `out`, each with its own params. */
function byRuns(
  backend: Backend,
  out: Tensor,
  input: Tensor,
  runs: readonly Run[],
  features: number,
  params: readonly DropoutParams[],
  kernel: (out: DeviceBuffer, input: DeviceBuffer, params: DropoutParams) => void,
): void {
  const op = 'exampleDropout';
  if (runs.length === 1) {
    kernel(out.buffer(), input.buffer(op), params[0]!);
    return;
  }
  backend.fill(out.buffer(), 0);
  runs.forEach((r, i) => {
    const n = r.count * features;
    const view = { shape: [n], strides: [1], offset: r.row * features };
    const rowIn = alloc(backend, [n], input.dtype, op);
    const rowOut = alloc(backend, [n], out.dtype, op);
    try {
      backend.copy(rowIn.buffer(), input.buffer(op), view);
      kernel(rowOut.buffer(), rowIn.buffer(), params[i]!);
      backend.addInto(out.buffer(), rowOut.buffer(), view);
    } finally {
      rowIn.dispose();
      rowOut.dispose();
    }
  });
}
