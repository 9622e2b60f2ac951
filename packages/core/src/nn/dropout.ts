import { dropout, exampleDropout } from '../ops/random.js';
import { reshape } from '../ops/shape.js';
import { defaultGenerator, type Generator } from '../random/generator.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

/** The batch the next forward passes run on, for per-example dropout masks. */
export interface DropoutExamples {
  /** The optimizer step (updates completed before this one). */
  step: number;
  /** Each row's example key, e.g. its index in the training set; one per example of the batch. */
  keys: readonly number[];
  /**
   * For a forward that gathers some positions of the batch [keys.length, length] into one tensor
   * (a causal LM's head gets only the positions that have a target): the flat index
   * (example · length + position) of each gathered row. An input with exactly rows.length rows is
   * taken as those rows; any other splits evenly over the examples.
   */
  gathered?: { length: number; rows: readonly number[] };
}

/**
 * The batch of the next forward passes with its keys already on the device (int32 tensors on the
 * model's backend), so that a captured graph replays with whatever keys are written into them:
 * each Dropout uses its own stream's key pair of `streamKeys` (`exampleStreamKeys(seed, step,
 * streams)`) and each row's (example key, position) of `rowKeys` (`exampleRowKeys`); an input
 * with as many rows as `gatheredRowKeys` holds pairs takes those instead (the gathered rows of a
 * causal LM's head, as `DropoutExamples.gathered`).
 */
export interface DeviceDropoutExamples {
  device: { streamKeys: Tensor; rowKeys: Tensor; gatheredRowKeys?: Tensor };
}

type KeyedExamples = (DropoutExamples | DeviceDropoutExamples) & { stream: number };

/**
 * Dropout active in training mode only. Without example keys each call draws one mask for the
 * whole tensor from the generator's stream (it advances the generator). With keys
 * (`setExamples`, or `setDropoutExamples` on a whole model), each example's mask is a function of
 * the generator's seed, the step, this module's stream and the example's key only (see
 * `exampleDropout`), so splitting a batch into micro-batches or across processes, reordering it or
 * padding it to another length changes no mask; the generator is not advanced.
 */
export class Dropout extends Module {
  #examples: KeyedExamples | null = null;

  constructor(
    readonly p: number,
    readonly generator: Generator = defaultGenerator,
  ) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: probability ${p} must be in [0, 1)`);
  }

  /** The example keys, step and stream the next forward passes use (or their device tensors); null returns to whole-tensor masks. */
  setExamples(examples: KeyedExamples | null): void {
    if (!examples) {
      this.#examples = null;
      return;
    }
    if ('device' in examples) {
      const { streamKeys, rowKeys, gatheredRowKeys } = examples.device;
      this.#examples = { stream: examples.stream, device: { streamKeys, rowKeys, ...(gatheredRowKeys ? { gatheredRowKeys } : {}) } };
      return;
    }
    const { step, keys, stream, gathered } = examples;
    this.#examples = {
      step,
      keys: [...keys],
      stream,
      ...(gathered ? { gathered: { length: gathered.length, rows: [...gathered.rows] } } : {}),
    };
  }

  /** The keys set by `setExamples`, or null. */
  get examples(): Readonly<KeyedExamples> | null {
    return this.#examples;
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return reshape(x, x.shape);
    const e = this.#examples;
    if (e && 'device' in e) {
      const { streamKeys, rowKeys, gatheredRowKeys } = e.device;
      const rows = x.rank === 0 || x.shape[x.rank - 1] === 0 ? 0 : x.size / x.shape[x.rank - 1]!;
      const keys = gatheredRowKeys && gatheredRowKeys.size === 2 * rows ? gatheredRowKeys : rowKeys;
      return exampleDropout(x, this.p, { streamKeys, stream: e.stream, rowKeys: keys });
    }
    if (e) return exampleDropout(x, this.p, { seed: this.generator.seed, step: e.step, stream: e.stream, ...rowsOf(x, e) });
    return dropout(x, this.p, this.generator);
  }
}

/** The examples' keys, or for an input of the gathered rows each row's key and position. */
function rowsOf(x: Tensor, e: DropoutExamples): { keys: readonly number[]; positions?: readonly number[] } {
  const g = e.gathered;
  const rows = x.rank === 0 || x.shape[x.rank - 1] === 0 ? 0 : x.size / x.shape[x.rank - 1]!;
  if (!g || rows !== g.rows.length) return { keys: e.keys };
  const keys = g.rows.map((r, i) => {
    const key = e.keys[Math.floor(r / g.length)];
    if (key === undefined || !Number.isInteger(r) || r < 0)
      throw new Error(`Dropout: gathered row ${i} is ${r}, outside the batch [${e.keys.length}, ${g.length}]`);
    return key;
  });
  return { keys, positions: g.rows.map((r) => r % g.length) };
}

/**
 * Gives every Dropout under `model` the batch of its next forward passes (null: back to
 * whole-tensor masks), as host keys or as device tensors. The i-th Dropout in `namedModules()`
 * order gets stream i, so each dropout call of a forward pass draws its own masks (with device
 * keys: key pair i of streamKeys, which must hold one per Dropout). Returns how many Dropout
 * modules it keyed.
 */
export function setDropoutExamples(model: Module, examples: DropoutExamples | DeviceDropoutExamples | null): number {
  let stream = 0;
  for (const [, m] of model.namedModules()) {
    if (!(m instanceof Dropout)) continue;
    m.setExamples(examples ? { ...examples, stream } : null);
    stream++;
  }
  return stream;
}
