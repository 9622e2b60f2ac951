import { needsGrad, own, record, save } from '../autograd/tape.js';
import type { Backend } from '../backend.js';
import type { DType } from '../dtype.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import { philox4x32, philoxBlocks, splitKey } from '../random/philox.js';
import type { Tensor } from '../tensor.js';
import { alloc, backendOf, requireFloat, requireInt } from './util.js';

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

/**
 * `ExampleMasks` with the keys already on the device (int32 tensors on x's backend): no host value
 * enters the kernel, so a captured graph replays with whatever keys were written into them since.
 */
export interface DeviceExampleMasks {
  /** Each stream's Philox key as two uint32 words (int32 bits), 2 elements per stream: `exampleStreamKeys`. */
  streamKeys: Tensor;
  /** Which key pair of `streamKeys` (the dropout module's index). */
  stream: number;
  /** Each row's (example key, position), 2 elements per row: `exampleRowKeys`. */
  rowKeys: Tensor;
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
 * The Philox keys of streams 0 … streams − 1 at (seed, step), as `DeviceExampleMasks.streamKeys`
 * holds them: stream s at [2s, 2s + 1] (low word, high word of exampleStreamSeed(seed, step, s)).
 */
export function exampleStreamKeys(seed: number, step: number, streams: number): Int32Array {
  if (!Number.isSafeInteger(streams) || streams < 0)
    throw new Error(`exampleStreamKeys: streams ${streams} must be a non-negative integer`);
  const out = new Int32Array(2 * streams);
  for (let s = 0; s < streams; s++) {
    const [k0, k1] = splitKey(exampleStreamSeed(seed, step, s));
    out[2 * s] = k0 | 0;
    out[2 * s + 1] = k1 | 0;
  }
  return out;
}

/**
 * Each row's (example key, position) as `DeviceExampleMasks.rowKeys` holds them: with a length,
 * `keys` are the examples of a batch [keys.length, length] (row e · length + s is position s of
 * example keys[e]); with positions, one key and one position per row.
 */
export function exampleRowKeys(keys: readonly number[], positionsOrLength: readonly number[] | number): Int32Array {
  return rowKeysOf('exampleRowKeys', keys, positionsOrLength, 0);
}

/**
 * The (key, position) pairs of every row, checked: keys integers in [0, 2²⁷), positions integers
 * whose row fits the example's 2²⁶ counters (rows of `features` features; 0: of at most 4).
 */
function rowKeysOf(op: string, keys: readonly number[], positionsOrLength: readonly number[] | number, features: number): Int32Array {
  const perRow = typeof positionsOrLength !== 'number';
  if (perRow && positionsOrLength.length !== keys.length)
    throw new Error(`${op}: ${keys.length} keys and ${positionsOrLength.length} positions: give one key and one position per row`);
  if (!perRow && (!Number.isSafeInteger(positionsOrLength) || positionsOrLength < 0))
    throw new Error(`${op}: length ${positionsOrLength} must be a non-negative integer`);
  const length = perRow ? 1 : positionsOrLength;
  const rows = perRow ? keys.length : keys.length * length;
  const blocks = Math.max(1, philoxBlocks(features));
  const out = new Int32Array(2 * rows);
  for (let row = 0; row < rows; row++) {
    const b = Math.floor(row / length);
    const key = keys[b]!;
    const position = perRow ? positionsOrLength[row]! : row % length;
    if (row % length === 0 && (!Number.isInteger(key) || key < 0 || key >= EXAMPLE_KEY_LIMIT))
      throw new Error(`${op}: example key ${key} (${perRow ? 'row' : 'example'} ${b}) must be an integer in [0, 2^27)`);
    if (!Number.isInteger(position) || position < 0 || (position + 1) * blocks > EXAMPLE_ROW_COUNTERS)
      throw new Error(
        `${op}: position ${position} (row ${row}) of ${features || 'up to 4'} features is outside the 2^28 elements one example's stream holds`,
      );
    out[2 * row] = key;
    out[2 * row + 1] = position;
  }
  return out;
}

/**
 * Dropout whose mask does not depend on how examples are batched. The vector at position s of
 * example `key` (a row: the last axis, F features) draws from the Philox stream
 * (exampleStreamSeed(seed, step, stream), key · 2²⁶ + s · ⌈F/4⌉), so an example's mask is the same
 * in any batch, micro-batch or process, whatever the padded length (right padding keeps positions
 * in place) and whether positions are flattened into the batch axis or gathered (`positions`).
 * One `rowDropout` kernel draws every row, from keys uploaded here (`ExampleMasks`) or already
 * on the device (`DeviceExampleMasks`, which a captured graph can replay with new keys); the mask
 * is regenerated in backward.
 */
export function exampleDropout(x: Tensor, p: number, masks: ExampleMasks | DeviceExampleMasks): Tensor {
  const op = 'exampleDropout';
  const backend = backendOf(op, 'rowKeys' in masks ? [x, masks.streamKeys, masks.rowKeys] : [x]);
  requireFloat(op, x);
  if (!(p >= 0 && p <= 1)) throw new Error(`${op}: probability ${p} must be in [0, 1]`);
  const features = x.rank === 0 ? 0 : x.shape[x.rank - 1]!;
  const rows = features === 0 ? 0 : x.size / features;
  if ('rowKeys' in masks) {
    checkDeviceKeys(x, rows, features, masks);
    return rowDropoutOp(backend, x, p, masks.streamKeys, masks.rowKeys, masks.stream, false);
  }
  const { keys, positions } = masks;
  const perRow = positions !== undefined;
  if (keys.length === 0 || (perRow ? keys.length !== rows || positions.length !== rows : rows % keys.length !== 0)) {
    const given = perRow ? `${keys.length} keys and ${positions.length} positions` : `${keys.length} example keys`;
    throw new Error(
      `${op}: ${x.describe()} has ${rows} rows of ${features} features, which ${given} do not fit: give one key per example (rows split evenly), or a key and a position per row`,
    );
  }
  const rowKeys = rowKeysOf(op, keys, perRow ? positions : rows / keys.length, features);
  const streamKeys = splitKey(exampleStreamSeed(masks.seed, masks.step, masks.stream)).map((k) => k | 0);
  const [sk, rk] = uploadKeys(backend, Int32Array.from(streamKeys), rowKeys);
  return rowDropoutOp(backend, x, p, sk, rk, 0, true);
}

/** The host form's keys as int32 tensors; a backend that cannot upload now (a graph capture) gets the device form named. */
function uploadKeys(backend: Backend, streamKeys: Int32Array, rowKeys: Int32Array): [Tensor, Tensor] {
  const op = 'exampleDropout';
  const sk = alloc(backend, [2], 'int32', op);
  const rk = alloc(backend, [rowKeys.length / 2, 2], 'int32', op);
  try {
    backend.write(sk.buffer(), streamKeys);
    if (rowKeys.length > 0) backend.write(rk.buffer(), rowKeys);
  } catch (e) {
    sk.dispose();
    rk.dispose();
    throw new Error(
      `${op}: uploading the host keys failed (${(e as Error).message}); in a captured graph give the keys as device tensors ({ streamKeys, stream, rowKeys }: exampleStreamKeys, exampleRowKeys)`,
    );
  }
  return [sk, rk];
}

/** The device keys fit x: int32, a (key, position) pair per row, key pair `stream` present. */
function checkDeviceKeys(x: Tensor, rows: number, features: number, masks: DeviceExampleMasks): void {
  const op = 'exampleDropout';
  const { streamKeys, rowKeys, stream } = masks;
  requireInt(op, streamKeys, 'streamKeys');
  requireInt(op, rowKeys, 'rowKeys');
  if (rowKeys.size !== 2 * rows)
    throw new Error(
      `${op}: ${x.describe()} has ${rows} rows of ${features} features, but rowKeys ${rowKeys.describe()} holds ${rowKeys.size / 2} (example key, position) pairs: give one pair per row`,
    );
  if (!Number.isSafeInteger(stream) || stream < 0 || 2 * stream + 2 > streamKeys.size)
    throw new Error(
      `${op}: stream ${stream} is not a key pair of streamKeys ${streamKeys.describe()} (${Math.floor(streamKeys.size / 2)} streams): build it with exampleStreamKeys(seed, step, streams)`,
    );
}

/** One rowDropout over x's rows (and one rowDropoutBackward in backward). `owned`: the key tensors are the op's own, freed with it. */
function rowDropoutOp(backend: Backend, x: Tensor, p: number, streamKeys: Tensor, rowKeys: Tensor, stream: number, owned: boolean): Tensor {
  const op = 'exampleDropout';
  const features = x.rank === 0 ? 0 : x.shape[x.rank - 1]!;
  const params = { p, rows: features === 0 ? 0 : x.size / features, features, stream };
  const y = alloc(backend, x.shape, x.dtype, op);
  try {
    if (y.size > 0) backend.rowDropout(y.buffer(), x.buffer(op), streamKeys.buffer(op), rowKeys.buffer(op), params);
  } catch (e) {
    y.dispose();
    if (owned) for (const t of [streamKeys, rowKeys]) t.dispose();
    throw e;
  }
  if (!needsGrad([x])) {
    if (owned) for (const t of [streamKeys, rowKeys]) t.dispose();
    return y;
  }
  const [sk, rk] = owned ? [own(streamKeys), own(rowKeys)] : [save(streamKeys), save(rowKeys)];
  record(op, [x], [y], [sk, rk], ([g]) => {
    const dx = alloc(backend, x.shape, g!.dtype, op);
    if (dx.size > 0) backend.rowDropoutBackward(dx.buffer(), g!.buffer(op), sk.buffer(op), rk.buffer(op), params);
    return [dx];
  });
  return y;
}
